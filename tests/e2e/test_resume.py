"""Interruption and resume: kill `audit-agent run` (SIGINT, SIGKILL) while it judges, rerun the same
command, and compare with an uninterrupted run with the same seed: cached judgements are reused
(counted at the server), the outputs are identical apart from run-time numbers, and no output file
is ever left half-written.

The model is the fault server (tests/faultserver.py) with a little latency: fast and deterministic.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.faultserver import FaultServer, write_config

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "fixtures" / "support" / "train.csv"
CHECKS = ["--check", "exact_duplicate", "--check", "near_duplicate", "--check", "class_balance",
          "--check", "template_frame", "--check", "label_issue"]

# Lines and fields that hold run-time numbers (seconds, how many calls came from the cache): the
# only accepted differences between a resumed and an uninterrupted run.
RUN_TIME_LINE = re.compile(r"(\d+\.\d+ s\b|\(\d+ from cache\)|Check timings|took)")
RUN_TIME_FIELDS = {"seconds", "run_seconds", "calls", "cached_calls", "cached", "prompt_tokens", "completion_tokens",
                   "cost_usd", "t", "trace_file"}


def command(data: Path, out: Path, cfg: Path) -> list[str]:
    return [sys.executable, "-m", "audit_agent", "run", str(data), "--model", "openai/fault", "--config", str(cfg),
            "--out", str(out), "--seed", "7", "--max-calls", "60", "--no-rewrite-guide", "--paraphrase-rows", "0",
            *CHECKS]


def env() -> dict[str, str]:
    return {**os.environ, "FAKE_KEY": "sk-test-resume", "PYTHONUNBUFFERED": "1"}


def run_to_end(data: Path, out: Path, cfg: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(data, out, cfg), env=env(), capture_output=True, text=True, timeout=600)


def interrupt(server: FaultServer, data: Path, out: Path, cfg: Path, sig: signal.Signals, after_hits: int) -> int:
    """Start a run, send `sig` once the server has taken `after_hits` requests; the exit code. The server
    holds every later request until the signal is sent, so the run cannot finish first on a slow machine."""
    server.hold_after, server.released = after_hits, threading.Event()
    # the run gets Ctrl-C's default action even when this process ignores SIGINT (an ignored signal is
    # inherited, and Python then installs no KeyboardInterrupt handler; a test before this one can leave
    # the pytest process so)
    proc = subprocess.Popen(command(data, out, cfg), env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while server.hits < after_hits:
        assert proc.poll() is None, f"the run ended before it was interrupted: {proc.communicate()}"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(sig)
    server.hold_after = None
    server.released.set()
    _, err = proc.communicate(timeout=120)
    if sig is signal.SIGINT:
        assert "rerun the same command to resume" in " ".join(err.split()), err
        assert "Traceback" not in err, err
    return proc.returncode


def assert_no_half_written_files(out: Path) -> None:
    """Only finished files: no temporary files left, and every result file that exists parses."""
    assert not [p.name for p in out.glob(".*.tmp")], list(out.iterdir())
    if (out / "summary.json").exists():
        json.loads((out / "summary.json").read_text(encoding="utf-8"))
    if (out / "findings.jsonl").exists():
        for line in (out / "findings.jsonl").read_text(encoding="utf-8").splitlines():
            json.loads(line)
    trace = out / "trace.jsonl"
    if trace.exists():
        lines = trace.read_text(encoding="utf-8").splitlines()
        for line in lines:  # the trace is appended line by line and flushed: no torn line
            json.loads(line)


def strip_run_time(value: Any) -> Any:
    """Drop run-time fields; round floats to 2 decimals: the cross-validated classifier's
    probabilities differ in the 4th decimal between any two runs (parallel liblinear folds), which is
    not what this test is about."""
    if isinstance(value, dict):
        return {k: strip_run_time(v) for k, v in value.items() if k not in RUN_TIME_FIELDS}
    if isinstance(value, list):
        return [strip_run_time(v) for v in value]
    if isinstance(value, float):
        return round(value, 2)
    return value


def round_numbers(line: str) -> str:
    return re.sub(r"\d+\.\d{3,}", lambda m: f"{float(m.group()):.2f}", line)


def comparable(out: Path) -> dict[str, Any]:
    report = [ln for ln in (out / "report.md").read_text(encoding="utf-8").splitlines()
              if not RUN_TIME_LINE.search(ln)]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return {
        "findings": [strip_run_time(json.loads(ln)) for ln in
                     (out / "findings.jsonl").read_text(encoding="utf-8").splitlines()],
        "report": [round_numbers(ln.replace(str(out), "OUT")) for ln in report],
        "summary": strip_run_time({k: v for k, v in summary.items() if k not in ("versions", "files")}),
        "verdicts": [{k: v for k, v in e.items() if k not in RUN_TIME_FIELDS}
                     for e in map(json.loads, (out / "trace.jsonl").read_text(encoding="utf-8").splitlines())
                     if e["event"] == "verdict"],
    }


def diff_fields(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two JSON-like values differ (for a readable failure message)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in diff_fields(a.get(k), b.get(k), f"{path}.{k}")]
    return [] if a == b else [path or "<root>"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupted_run_resumes_from_cache_with_identical_outputs(tmp_path: Path, sig: signal.Signals) -> None:
    with FaultServer(latency=0.25) as server:
        ref_cfg = write_config(tmp_path / "ref.yaml", server, cache_dir=tmp_path / "ref_cache")
        ref = run_to_end(TRAIN, tmp_path / "ref", ref_cfg)
        assert ref.returncode == 0, ref.stderr
        ref_hits = server.hits
        ref_judge = json.loads((tmp_path / "ref" / "summary.json").read_text(encoding="utf-8"))["judge"]
        assert ref_hits == ref_judge["calls"] and ref_hits >= 12

        server.reset_counts()
        cfg = write_config(tmp_path / "run.yaml", server, cache_dir=tmp_path / "cache")
        out = tmp_path / "out"
        code = interrupt(server, TRAIN, out, cfg, sig, after_hits=8)
        assert code == (130 if sig is signal.SIGINT else -signal.SIGKILL)
        assert not (out / "report.md").exists() and not (out / "summary.json").exists()
        assert_no_half_written_files(out)
        hits_before_kill = server.hits

        server.reset_counts()
        rerun = run_to_end(TRAIN, out, cfg)
        assert rerun.returncode == 0, rerun.stderr
        judge = json.loads((out / "summary.json").read_text(encoding="utf-8"))["judge"]

    # cached judgements are reused: the rerun asks the server only for what the killed run had not got
    assert judge["cached_calls"] >= 4, judge
    assert server.hits == judge["calls"] < ref_hits
    assert judge["calls"] + judge["cached_calls"] == ref_judge["calls"] + ref_judge["cached_calls"]
    assert server.hits + hits_before_kill <= ref_hits + 4, "at most the requests in flight are repeated"
    assert_no_half_written_files(out)

    a, b = comparable(tmp_path / "ref"), comparable(out)
    assert a["verdicts"] == b["verdicts"]
    assert len(a["findings"]) == len(b["findings"])
    assert [f for f in a["findings"] if f not in b["findings"]] == []
    assert diff_fields(a["summary"], b["summary"]) == []
    assert [ln for ln in a["report"] if ln not in b["report"]] == []
    assert a["report"] == b["report"]


def test_label_issue_is_reproducible_with_the_same_seed() -> None:
    from audit_agent.checks import REGISTRY
    from audit_agent.config import AuditConfig
    from audit_agent.context import AuditContext
    from audit_agent.io.loader import load_dataset

    runs = []
    for _ in range(2):
        ctx = AuditContext(train=load_dataset(TRAIN), config=AuditConfig(seed=7))
        runs.append([f.model_dump(mode="json") for f in REGISTRY["label_issue"].run(ctx)])
    assert runs[0] and runs[0] == runs[1]
