"""API keys come from environment variables only and never appear in any output: report, findings,
summary, trace, the call cache, captured stdout/stderr, log records or error messages - even when the
provider's error bodies echo the Authorization header back."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import audit_agent.llm.client as client_module
from audit_agent.cli import app
from tests.faultserver import FaultServer, write_config

SECRET = "sk-test-PLANTED-SECRET-123"
TRAIN = Path(__file__).resolve().parents[2] / "fixtures" / "support" / "train.csv"
GUIDE = Path(__file__).resolve().parents[2] / "fixtures" / "support" / "guide.md"
runner = CliRunner()


@pytest.fixture(autouse=True)
def planted_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTED_KEY", SECRET)

    class Fast(client_module.LiteLLMClient):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.backoff_seconds = 0.02

    monkeypatch.setattr(client_module, "LiteLLMClient", Fast)


def leaks(root: Path) -> list[str]:
    """Every file under `root` (text or binary, including sqlite WAL files) that holds the key."""
    needle = SECRET.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def run(tmp_path: Path, server: FaultServer, *args: str, **llm: Any) -> tuple[int, str]:
    cfg = write_config(tmp_path / "cfg.yaml", server, cache_dir=tmp_path / "cache", key_env="PLANTED_KEY", **llm)
    result = runner.invoke(app, ["run", str(TRAIN), "--guide", str(GUIDE), "--model", "openai/fault", "--config",
                                 str(cfg), "--out", str(tmp_path / "out"), "--check", "exact_duplicate",
                                 "--check", "class_balance", "--paraphrase-rows", "1", "--per-row", "1", *args])
    return result.exit_code, result.stdout + result.stderr


def test_key_never_reaches_outputs_even_when_errors_echo_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with FaultServer(rates={"echo_auth": 0.3, "500": 0.1, "429": 0.1, "truncated": 0.1}, seed=5) as server:
        code, output = run(tmp_path, server, "--max-calls", "50", retries=1)
    assert code == 0, output
    assert f"Bearer {SECRET}" in server.auth_headers, "the key must reach the provider (else the test proves nothing)"
    assert server.counts["echo_auth"] > 0
    trace = (tmp_path / "out" / "trace.jsonl").read_text(encoding="utf-8")
    assert '"ok": false' in trace, "some calls must fail with the echoing error body"
    assert SECRET not in output
    assert SECRET not in caplog.text
    assert leaks(tmp_path / "out") == []
    assert leaks(tmp_path / "cache") == []
    assert (tmp_path / "cache" / "llm_calls.sqlite").exists()
    assert "PLANTED_KEY" in (tmp_path / "cfg.yaml").read_text() and leaks(tmp_path) == []


def test_authentication_error_is_exit_3_without_the_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with FaultServer(rates={"401": 1.0}) as server:
        code, output = run(tmp_path, server, "--max-calls", "10", retries=2, max_concurrency=1)
    assert code == 3, output
    error = [ln for ln in output.splitlines() if ln.startswith("error:")]
    assert len(error) == 1 and "AuthenticationError" in error[0], output
    assert server.hits == 1, "an authentication error is not retried"
    assert SECRET not in output and SECRET not in caplog.text
    assert leaks(tmp_path) == []


def test_key_in_the_config_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"llm:\n  model: openai/gpt-4o-mini\n  api_key: {SECRET}\n", encoding="utf-8")
    result = runner.invoke(app, ["run", str(TRAIN), "--config", str(cfg), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "api_key" in result.stderr and SECRET not in result.stdout + result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_key_variable_is_exit_3_naming_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLANTED_KEY")
    with FaultServer() as server:
        code, output = run(tmp_path, server, "--max-calls", "5")
    assert code == 3
    assert "PLANTED_KEY" in output and server.hits == 0
