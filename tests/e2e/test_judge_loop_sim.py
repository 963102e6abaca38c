"""The agent loop end to end against the simulated judge (bench/judge_sim.py): the real client over
loopback, the real checks on the bundled example, canaries, verification and the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from audit_agent.api import LLMJobs, audit
from tests.judge_sim_fixture import SUPPORT, planted_truth, sim_llm

LABEL_CHECKS = ["label_issue", "conflicting_labels", "label_overlap"]


def _wrong_rows() -> dict[str, str]:
    """Rows whose label the sim knows as wrong (the planted flips, plus case-only conflict copies)."""
    import csv

    truth = planted_truth()
    with open(SUPPORT / "train.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = {}
    for r in rows:
        hit = truth.lookup(r["text"])
        if hit is not None and hit[0] != r["label"]:
            out[r["id"]] = hit[0]
    return out


def _run(judge_sim: Any, tmp_path: Path, accuracy: float, max_calls: int, **config: Any) -> Any:
    sim = judge_sim(planted_truth(), accuracy=accuracy)
    cfg = {"llm": sim_llm(sim, tmp_path / f"cache{accuracy}", budget={"max_calls": max_calls, "max_tokens": 10**9}),
           **config}
    return audit(SUPPORT / "train.csv", config=cfg, checks=LABEL_CHECKS,
                 jobs=LLMJobs(rewrite_guide=False, paraphrase_rows=0)), sim


def test_a_perfect_judge_is_calibrated_and_its_verified_claims_are_wrong_labels(judge_sim: Any,
                                                                               tmp_path: Path) -> None:
    result, sim = _run(judge_sim, tmp_path, 1.0, 60)
    judge = result.run.judge
    looks = judge.second_looks.taken
    assert judge.rows_judged + looks == 60 and judge.canaries_judged == 10 and judge.stop_kind == "budget"
    assert judge.calibration.accuracy == 1.0 and judge.calibration.informative
    assert sim.stats()["judge_requests"] == 60
    wrong = _wrong_rows()
    verified = [f for f in result.run.findings if f.check == "judge_contradicted" and f.verified]
    assert len(verified) >= 10
    assert all(wrong.get(str(f.rows[0])) == f.evidence.best_label for f in verified)
    out = result.write(tmp_path / "audit")
    report = out["report"].read_text(encoding="utf-8")
    cal = judge.calibration
    assert cal.swapped == cal.swapped_correct == 10 and cal.confirmed == cal.confirmed_correct > 0
    assert "Its balanced accuracy on known cases: **100%**" in report and "Label error rate" in report
    assert "(10 of 10 caught with the right label, 10 flagged at all)" in report
    summary = json.loads(out["summary"].read_text(encoding="utf-8"))
    assert summary["judge"]["calibration"]["accuracy"] == 1.0
    assert summary["judge"]["error_estimate"]["sampled"] > 0


def test_a_judge_that_is_always_wrong_is_not_informative_and_verifies_nothing(judge_sim: Any,
                                                                             tmp_path: Path) -> None:
    result, _ = _run(judge_sim, tmp_path, 0.0, 120)
    judge = result.run.judge
    assert judge.calibration.informative is False and judge.stop_kind == "not_informative"
    assert judge.verified == 0 and judge.unverified > 0 and judge.error_estimate is None
    report = result.write(tmp_path / "audit")["report"].read_text(encoding="utf-8")
    assert "This model's verdicts are not informative" in report


def test_two_simulated_models_get_half_the_calls_each_and_a_kappa(judge_sim: Any, tmp_path: Path) -> None:
    other = judge_sim(planted_truth(), accuracy=0.7, seed=5)
    result, sim = _run(judge_sim, tmp_path, 0.9, 60,
                       judge={"second": {"model": "openai/sim2", "api_base": other.api_base}})
    judge = result.run.judge
    assert sim.stats()["judge_requests"] == other.stats()["judge_requests"] == 30
    assert judge.agreement is not None and judge.agreement.rows > 0 and judge.agreement.kappa is not None
    report = result.write(tmp_path / "audit")["report"].read_text(encoding="utf-8")
    assert "Two judges on the same rows" in report and "Cohen's kappa" in report


@pytest.mark.slow
def test_the_default_budget_spends_its_180_judge_calls_on_rows_of_the_bundled_example(judge_sim: Any, tmp_path: Path) -> None:
    """The default run: every check, guide rewrite and paraphrases on, the default 200-call budget."""
    sim = judge_sim(planted_truth(), accuracy=0.9)
    llm = sim_llm(sim, tmp_path / "cache")
    llm.pop("budget")
    result = audit(SUPPORT / "train.csv", SUPPORT / "eval.csv", SUPPORT / "real.csv", config={"llm": llm})
    judge = result.run.judge
    looks = judge.second_looks
    # every judge call reads a row: a new one, or (a second look, at most 10 % of the calls) one again
    assert judge.rows_judged + looks.taken == 180 and looks.taken <= looks.cap == 18 and judge.stop_kind == "budget"
    assert result.run.llm is not None and result.run.llm.shares["judge"] == 180


def test_cli_second_judge_options(judge_sim: Any, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from audit_agent.cli import app

    bad = CliRunner().invoke(app, ["run", str(SUPPORT / "train.csv"), "--no-llm", "--second-api-base", "http://x/v1",
                                   "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "judge.second.model" in " ".join(bad.output.split())
    sim = judge_sim(planted_truth(), accuracy=0.9)
    other = judge_sim(planted_truth(), accuracy=0.9, seed=9)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"llm:\n  cache_dir: {tmp_path / 'cache'}\n  max_concurrency: 8\n", encoding="utf-8")
    ok = CliRunner().invoke(app, ["run", str(SUPPORT / "train.csv"), "--config", str(cfg), "--model", "openai/sim",
                                  "--api-base", sim.api_base, "--second-judge", "openai/sim2", "--second-api-base",
                                  other.api_base, "--max-calls", "44", "--no-rewrite-guide", "--paraphrase-rows", "0",
                                  "--check", "label_issue", "--out", str(tmp_path / "a")])
    assert ok.exit_code in (0, 1), ok.output[-2000:]
    summary = json.loads((tmp_path / "a" / "summary.json").read_text(encoding="utf-8"))
    assert summary["judge"]["second_model"] == "openai/sim2" and summary["judge"]["agreement"]["rows"] > 0
    assert sim.stats()["judge_requests"] == other.stats()["judge_requests"] == 22
