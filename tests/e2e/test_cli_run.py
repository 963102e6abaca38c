"""`audit-agent run` end to end on the bundled example: files, exit codes, and (e2e) the embedded judge."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def test_findings_cover_the_planted_traps(deterministic_run) -> None:
    _, out = deterministic_run
    findings = [json.loads(line) for line in (out / "findings.jsonl").read_text().splitlines()]
    checks = {f["check"] for f in findings}
    for expected in ("exact_duplicate", "near_duplicate", "conflicting_labels", "label_issue", "repeated_opening",
                     "repeated_ending", "template_frame", "label_leak", "class_balance", "coverage_gap",
                     "real_gap", "contamination", "eval_too_clean", "pilot_gap", "review_sample"):
        assert expected in checks, expected
    planted = json.loads((SUPPORT / "planted.json").read_text())
    flagged = {str(r) for f in findings if f["check"] == "label_issue" for r in f["rows"]}
    flips = {p["id"] for p in planted["label_flip"]}
    assert len(flips & flagged) / len(flips) >= 0.5
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "fix first"
    assert sum(summary["counts"]["by_severity"].values()) == len(findings)
    report = (out / "report.md").read_text()
    assert report.startswith("# Data audit: train.csv")
    assert "FIX FIRST" in report
    for f in findings[:20]:
        assert f["id"] in (out / "findings.jsonl").read_text()


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
    assert (tmp_path / "deduplicated.jsonl").exists()


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
    assert judge["rows_judged"] + judge["rows_failed"] > 0
    assert judge["calls"] >= 1 and judge["cost_usd"] == 0
    trace = [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]
    assert {"plan", "pick", "verdict", "stop"} <= {e["event"] for e in trace}
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
