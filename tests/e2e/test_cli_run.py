"""`audit-agent run` end to end on the bundled example: files, exit codes, and (e2e) the embedded judge."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = ROOT / "fixtures" / "support"
EXAMPLE = [str(SUPPORT / "train.csv"), "--eval", str(SUPPORT / "eval.csv"), "--real", str(SUPPORT / "real.csv"),
           "--guide", str(SUPPORT / "guide.md")]


def audit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audit_agent", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=1200)


@pytest.fixture(scope="module")
def deterministic_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("audit")
    return audit("run", *EXAMPLE, "--out", str(out), "--no-llm", cwd=out), out


def test_deterministic_run_writes_every_output(deterministic_run) -> None:
    proc, out = deterministic_run
    assert proc.returncode == 0, proc.stderr
    for name in ("report.md", "findings.jsonl", "summary.json", "review_sample.csv", "deduplicated.csv",
                 "label_counts.png", "lengths.png"):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.glob(".*.tmp")), "temporary files left behind"
    assert not (out / "trace.jsonl").exists(), "--no-llm must not start the judge"
    assert "Verdict" in proc.stdout


def _findings(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "findings.jsonl").read_text().splitlines()]


def _ids(name: str) -> set[str]:
    return set(pd.read_csv(SUPPORT / name, dtype=str, keep_default_na=False)["id"])


def _grouped(findings: list[dict], check: str) -> list[set[str]]:
    """The row-id sets of a check's findings."""
    return [{str(r) for r in f["rows"]} for f in findings if f["check"] == check]


def _shares_words(a: str, b: str, n: int) -> bool:
    """Whether `a` and `b` (lowercased words) share a run of `n` consecutive words."""
    def grams(text: str) -> set[tuple[str, ...]]:
        words = re.findall(r"[a-z']+", text.lower())
        return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}
    return bool(grams(a) & grams(b))


def test_findings_name_only_rows_of_the_input_files(deterministic_run) -> None:
    """Every row id in findings.jsonl is an id of the split it names (train.csv, eval.csv, real.csv),
    finding ids are unique, and every high-severity finding is quoted in report.md by its id."""
    _, out = deterministic_run
    findings = _findings(out)
    splits = {"train": _ids("train.csv"), "eval": _ids("eval.csv"), "real": _ids("real.csv")}
    for f in findings:
        assert {str(r) for r in f["rows"]} <= splits[f["split"]], (f["check"], f["split"], f["rows"][:5])
    assert len({f["id"] for f in findings}) == len(findings)
    report = (out / "report.md").read_text()
    high = [f for f in findings if f["severity"] == "high"]
    assert high and all(f["id"] in report for f in high)


def test_findings_cover_the_planted_traps(deterministic_run) -> None:
    """Each kind of trap planted in fixtures/support (listed in planted.json) is found where it was put."""
    _, out = deterministic_run
    findings = _findings(out)
    planted = json.loads((SUPPORT / "planted.json").read_text())
    checks = {f["check"] for f in findings}
    for expected in ("exact_duplicate", "near_duplicate", "conflicting_labels", "label_issue", "repeated_opening",
                     "repeated_ending", "template_frame", "label_leak", "class_balance", "coverage_gap",
                     "real_gap", "contamination", "eval_too_clean", "pilot_gap", "review_sample"):
        assert expected in checks, expected
    exact = _grouped(findings, "exact_duplicate")
    for pair in planted["exact_duplicate"]:
        assert any({pair["id"], pair["of"]} <= group for group in exact), pair
    dropped = {str(r) for f in findings if f["check"] in ("exact_duplicate", "near_duplicate")
               for r in f["evidence"].get("drop", [])}
    for pair in planted["exact_duplicate"] + planted["near_duplicate"]:
        assert (pair["id"] in dropped) != (pair["of"] in dropped), f"exactly one row of {pair} is dropped"
    near = _grouped(findings, "near_duplicate") + exact  # a case or comma change is an exact duplicate
    for pair in planted["near_duplicate"]:
        assert any({pair["id"], pair["of"]} <= group for group in near), pair
    conflicts = _grouped(findings, "conflicting_labels")
    for pair in planted["label_conflict"]:
        assert any(set(pair["ids"]) <= group for group in conflicts), pair
    flagged = {str(r) for f in findings if f["check"] == "label_issue" for r in f["rows"]}
    flips = {p["id"] for p in planted["label_flip"]}
    assert len(flips & flagged) / len(flips) >= 0.5
    openings = [f for f in findings if f["check"] == "repeated_opening"]
    opening_rows = set(planted["repeated_opening"]["rows"])
    assert any(len(opening_rows & {str(r) for r in f["rows"]}) >= 0.9 * len(opening_rows) for f in openings)
    for signoff in planted["repeated_signoff"]:
        rows = set(signoff["rows"])
        assert any(len(rows & group) >= 0.9 * len(rows) for group in _grouped(findings, "repeated_ending")), signoff
    for frame in planted["template_frame"]:
        rows = set(frame["rows"])
        matches = [f for f in findings if f["check"] == "template_frame" and len(rows & set(map(str, f["rows"]))) >= 0.9 * len(rows)]
        assert matches and frame["label"] in matches[0]["labels"], frame["frame"]
    for leak in planted["leak_phrase"]:
        hits = [f for f in findings if f["check"] == "label_leak" and f["evidence"].get("top_label") == leak["label"]
                and _shares_words(f["evidence"]["phrase"], leak["phrase"], 4)
                and set(leak["rows"]) <= set(map(str, f["rows"]))]
        assert hits, leak["phrase"]
    rare = [f for f in findings if f["check"] == "class_balance" and f["evidence"].get("kind") == "rare_labels"]
    assert rare and planted["rare_class"]["label"] in rare[0]["labels"]
    assert set(rare[0]["rows"]) >= set(planted["rare_class"]["rows"])
    contaminated = {str(r) for f in findings if f["check"] == "contamination" and f["split"] == "eval" for r in f["rows"]}
    assert {p["id"] for p in planted["eval_contamination"]} <= contaminated
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "fix first"
    assert sum(summary["counts"]["by_severity"].values()) == len(findings)
    report = (out / "report.md").read_text()
    assert report.startswith("# Data audit: train.csv")
    assert "FIX FIRST" in report


def test_fail_on_gates_and_bad_input_exits_2(tmp_path: Path) -> None:
    gated = audit("run", *EXAMPLE, "--out", str(tmp_path / "g"), "--no-llm", "--fail-on", "high", cwd=tmp_path)
    assert gated.returncode == 1
    missing = audit("run", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "m"), "--no-llm", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "nope.csv" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert not (tmp_path / "m" / "report.md").exists()
    unknown = audit("run", *EXAMPLE, "--out", str(tmp_path / "u"), "--no-llm", "--text-col", "body", cwd=tmp_path)
    assert unknown.returncode == 2 and "'body'" in unknown.stderr


def test_generation_data_runs_the_house_style_checks(tmp_path: Path) -> None:
    proc = audit("run", str(SUPPORT / "chat.jsonl"), "--out", str(tmp_path), "--no-llm", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    findings = [json.loads(line) for line in (tmp_path / "findings.jsonl").read_text().splitlines()]
    targets = [f for f in findings if f["check"] in ("repeated_opening", "repeated_ending")
               and f["evidence"].get("field") == "target"]
    assert any("thanks for reaching out" in json.dumps(f["evidence"]).lower() for f in targets)
    # the planted duplicate records go, their originals stay, and the copy holds exactly the rest
    planted = json.loads((SUPPORT / "planted.json").read_text())["generation_duplicates"]["pairs"]
    dropped = {int(r) for f in findings if f["check"] in ("exact_duplicate", "near_duplicate")
               for r in f["evidence"].get("drop", [])}
    assert {p["index"] for p in planted} <= dropped and not {p["of"] for p in planted} & dropped
    source = (SUPPORT / "chat.jsonl").read_text().splitlines()
    kept = (tmp_path / "deduplicated.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in kept] == [json.loads(x) for i, x in enumerate(source) if i not in dropped]


@pytest.mark.e2e
def test_run_with_the_embedded_judge(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"llm:\n  cache_dir: {tmp_path / 'cache'}\n")
    args = ["run", *EXAMPLE, "--out", str(tmp_path / "a"), "--config", str(cfg), "--max-calls", "14",
            "--paraphrase-rows", "2", "--per-row", "1"]
    proc = audit(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "data stays on this machine" in " ".join(proc.stderr.split())
    out = tmp_path / "a"
    summary = json.loads((out / "summary.json").read_text())
    judge = summary["judge"]
    shares = summary["llm"]["shares"]
    # the judge really judged: every picked row got a verdict from the model (grammar-constrained
    # replies always parse), none failed, and the run is not flagged partial
    assert 0 < judge["rows_judged"] <= shares["judge"], judge
    assert judge["rows_failed"] == 0 and judge["partial"] is False, judge
    assert judge["calls"] == judge["rows_judged"] - judge["cached_calls"] and judge["cost_usd"] == 0
    assert sum(judge["verdicts"].values()) == judge["real_rows_judged"]  # canaries are calibration, not verdicts
    trace = [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]
    assert {"plan", "pick", "verdict", "stop"} <= {e["event"] for e in trace}
    verdicts = [e for e in trace if e["event"] == "verdict"]
    assert len(verdicts) == judge["rows_judged"] > 0
    assert not [e for e in trace if e["event"] == "call" and not e["ok"] and not e["budget_refused"]]
    train_ids = _ids("train.csv")
    assert {str(e["row_id"]) for e in verdicts} <= train_ids
    report = (out / "report.md").read_text()
    assert "## Judge" in report and "SmolLM2" in report
    assert (out / "revised_guide.md").exists() and (out / "paraphrases.csv").exists()
    shares = summary["llm"]["shares"]
    assert sum(shares.values()) == 14 and min(shares.values()) >= 1
    assert sum(1 for e in trace if e["event"] == "call" and not e["budget_refused"]) <= shares["judge"]
    # A rerun is served from the cache: no new LLM call, same findings.
    again = audit(*args[:-6], "--out", str(tmp_path / "b"), "--config", str(cfg), "--max-calls", "14",
                  "--paraphrase-rows", "2", "--per-row", "1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    summary_b = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary_b["llm"]["calls"] == 0
    ids_a = sorted(json.loads(x)["id"] for x in (out / "findings.jsonl").read_text().splitlines())
    ids_b = sorted(json.loads(x)["id"] for x in (tmp_path / "b" / "findings.jsonl").read_text().splitlines())
    assert ids_a == ids_b
