"""`audit-agent stress --model openai/sim --api-base ...` against a simulated classifier server
(tests/classifier_sim.py) through the real LLM client: the accuracy it reports per variant kind is
the one the simulator's deterministic answers give, and the planted rate within binomial noise;
invented labels count as wrong and are reported; a rerun is served from the cache; a model that
cannot be used exits 3."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audit_agent.cli import app
from audit_agent.io.loader import load_dataset
from audit_agent.jobs.stress import make_variants
from audit_agent.jobs.stress_result import StressResult
from tests.classifier_sim import ClassifierSim
from tests.faultserver import FaultServer

SUPPORT = Path(__file__).resolve().parents[2] / "fixtures" / "support"
TRAIN, EVAL = SUPPORT / "train.csv", SUPPORT / "eval.csv"
RATES = {"clean": 0.95, "very_short": 0.6, "typos": 0.8, "no_punctuation": 0.9, "lowercase": 0.85,
         "mixed_intent": 0.5, "indirect": 0.7, "emotional": 0.75}
Z = 4.0  # tolerance against the planted rate: 4 binomial standard errors of the scored count
runner = CliRunner()


def sim_truth(seed: int = 0) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """Every text the run can send, with its true label and kind (the clean kind wins a tie)."""
    train, ev = load_dataset(TRAIN), load_dataset(EVAL, role="eval")
    truth: dict[str, tuple[str, str]] = {}
    for v in make_variants(ev.frame.astype(str), train.frame, seed=seed):
        truth.setdefault(v.text, (v.label, v.kind))
    return truth, train.label_set


def run_stress(tmp_path: Path, api_base: str, *extra: str) -> tuple[int, str]:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"llm:\n  cache_dir: {tmp_path / 'cache'}\n  max_concurrency: 8\n  retries: 1\n"
                   "  request_timeout: 10\n  backoff_seconds: 0.05\n", encoding="utf-8")
    result = runner.invoke(app, ["stress", str(TRAIN), "--eval", str(EVAL), "--model", "openai/sim",
                                 "--api-base", api_base, "--config", str(cfg), "--out", str(tmp_path / "out"),
                                 *extra])
    return result.exit_code, result.output + result.stderr


def load_result(tmp_path: Path) -> StressResult:
    return StressResult.model_validate_json((tmp_path / "out" / "stress.json").read_text(encoding="utf-8"))


def assert_exact(res: StressResult, sim: ClassifierSim) -> None:
    """Each kind's accuracy is the one the simulator's deterministic answers give on the texts scored."""
    for kind in ("clean", *res.kinds):
        scored = [v for v in res.variants if v.kind == kind and v.correct is not None]
        assert res.score(kind).scored == len(scored) > 0, kind
        assert all(v.predicted == sim.answer(v.text) for v in scored), kind
        exact = sum(sim.answer(v.text) == v.label for v in scored) / len(scored)
        assert res.score(kind).accuracy == pytest.approx(exact, abs=1e-4), kind


def test_reported_accuracy_is_the_simulators_invented_labels_count_wrong_and_reruns_hit_the_cache(
        tmp_path: Path) -> None:
    truth, labels = sim_truth()
    with ClassifierSim(truth, labels, rates=RATES, invent=0.5, seed=5) as sim:
        code, output = run_stress(tmp_path, sim.api_base, "--max-rows", "12")
        assert code == 0, output
        res = load_result(tmp_path)
        assert res.rows == 12
        assert sim.hits == len({v.text for v in res.variants if v.kept}), "each distinct text asked once"
        assert sim.asked["unknown"] == 0
        assert_exact(res, sim)
        invented = [v for v in res.variants if v.predicted and v.predicted.startswith("not_a_label_")]
        assert invented and all(v.correct is False for v in invented)
        assert sum(res.unknown_predictions.values()) == len(invented)
        assert sum(s.unknown_labels for s in [res.clean, *res.per_kind]) == len(invented)
        md = (tmp_path / "out" / "stress.md").read_text(encoding="utf-8")
        assert "Labels the model invented" in md and "`not_a_label_" in md

        hits_before = sim.hits
        code, output = run_stress(tmp_path, sim.api_base, "--max-rows", "12")
        assert code == 0, output
        assert sim.hits == hits_before, "a rerun is answered from the cache"
        assert load_result(tmp_path).per_kind == res.per_kind


def test_a_spent_budget_leaves_texts_unanswered_and_says_so(tmp_path: Path) -> None:
    truth, labels = sim_truth()
    with ClassifierSim(truth, labels, rates=RATES, seed=5) as sim:
        code, output = run_stress(tmp_path, sim.api_base, "--max-rows", "6", "--max-calls", "10")
        assert code == 0, output
        res = load_result(tmp_path)
        assert sim.hits == 10
    sent = {v.text for v in res.variants if v.kept}
    unanswered = [v for v in res.variants if v.kept and v.correct is None]
    assert len({v.text for v in unanswered}) == len(sent) - 10
    assert all("budget" in str(v.error) for v in unanswered)
    assert sum(s.unanswered for s in [res.clean, *res.per_kind]) == len(unanswered)
    assert any("budget ran out" in n for n in res.notes) and "budget ran out" in " ".join(output.split())


@pytest.mark.slow
def test_reported_accuracy_per_kind_matches_the_planted_rate(tmp_path: Path) -> None:
    """All 120 eval rows (about 800 texts): exact, and within Z binomial standard errors of the
    planted rate (the bench runs thousands of rows, where that is within 0.02)."""
    truth, labels = sim_truth()
    with ClassifierSim(truth, labels, rates=RATES, seed=5) as sim:
        code, output = run_stress(tmp_path, sim.api_base)
        assert code == 0, output
        res = load_result(tmp_path)
        assert_exact(res, sim)
        by_kind: dict[str, list[bool]] = defaultdict(list)
        for v in res.variants:
            if v.correct is not None:
                by_kind[str(sim.kind_of(v.text))].append(v.correct)
        for kind, hits in by_kind.items():
            p, n = RATES[kind], len(hits)
            measured = sum(hits) / n
            assert n > 40 and abs(measured - p) <= Z * math.sqrt(p * (1 - p) / n), (kind, measured, p, n)


def test_a_model_that_cannot_be_used_exits_3(tmp_path: Path) -> None:
    with FaultServer(rates={"401": 1.0}) as server:
        code, output = run_stress(tmp_path, server.api_base, "--max-rows", "3")
    assert code == 3, output
    assert "Traceback" not in output and not (tmp_path / "out" / "stress.json").exists()
