"""Failing models: the CLI against a real local HTTP server (tests/faultserver.py) that answers like an
OpenAI-compatible endpoint but returns 429, 500, timeouts, truncated JSON, schema-violating JSON and
slow streams. The run retries with backoff, respects the budget, marks rows it could not judge and
finishes with a report and summary.json that say so."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import audit_agent.llm.client as client_module
from audit_agent.cli import app
from audit_agent.config import AuditConfig
from tests.faultserver import FaultServer, write_config

TRAIN = Path(__file__).resolve().parents[2] / "fixtures" / "support" / "train.csv"
runner = CliRunner()
FAST = ["--check", "exact_duplicate", "--check", "class_balance", "--no-rewrite-guide", "--paraphrase-rows", "0"]
BACKOFF = 0.05


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's first retry waits 1 s by default; tests use 50 ms (llm.backoff_seconds is not a
    config setting yet)."""

    class Fast(client_module.LiteLLMClient):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.backoff_seconds = BACKOFF

    monkeypatch.setattr(client_module, "LiteLLMClient", Fast)
    monkeypatch.setenv("FAKE_KEY", "sk-test-not-a-real-key")


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[FaultServer]:
    kwargs = getattr(request, "param", {})
    with FaultServer(**kwargs) as srv:
        yield srv


def run(tmp_path: Path, server: FaultServer | str, *args: str, **llm: Any) -> tuple[int, str, Path]:
    cfg = write_config(tmp_path / "cfg.yaml", server, cache_dir=tmp_path / "cache", **llm)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(TRAIN), "--model", "openai/fault", "--config", str(cfg),
                                 "--out", str(out), *FAST, *args])
    return result.exit_code, result.stdout + result.stderr, out


def judge_summary(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "summary.json").read_text(encoding="utf-8"))["judge"])


def trace_calls(out: Path) -> list[dict[str, Any]]:
    events = [json.loads(x) for x in (out / "trace.jsonl").read_text(encoding="utf-8").splitlines()]
    return [e for e in events if e.get("event", e.get("type")) == "call" or ("ok" in e and "row_id" in e)]


MIXED = {"rates": {"429": 0.15, "500": 0.1, "timeout": 0.05, "truncated": 0.1, "schema": 0.1, "slow": 0.05},
         "seed": 3, "timeout_seconds": 1.5}


@pytest.mark.parametrize("server", [MIXED], indirect=True)
def test_mixed_faults_finish_with_a_partial_report(tmp_path: Path, server: FaultServer) -> None:
    code, output, out = run(tmp_path, server, "--max-calls", "60", retries=1, request_timeout=1.0,
                            max_concurrency=4)
    assert code == 0, output
    assert "Traceback" not in output
    judge = judge_summary(out)
    assert judge["rows_judged"] > 0 and judge["rows_failed"] > 0
    # --max-calls bounds logical calls (rows); requests, retries included, at most max_calls x (retries + 1)
    assert judge["rows_judged"] + judge["rows_failed"] <= 60
    assert judge["calls"] == server.hits <= 60 * 2
    assert server.counts["ok"] + server.counts["slow"] >= judge["rows_judged"] - judge["cached_calls"]
    assert {"429", "500", "timeout", "truncated", "schema"} <= set(server.counts)
    report = (out / "report.md").read_text(encoding="utf-8")
    assert f"({judge['rows_failed']} failed)" in report
    calls = trace_calls(out)
    failed = [c for c in calls if c.get("ok") is False and not c.get("budget_refused")]
    assert len(failed) == judge["rows_failed"] and all(c["error"] for c in failed)


@pytest.mark.parametrize("server", [{}], indirect=True)
def test_clean_server_judges_every_row(tmp_path: Path, server: FaultServer) -> None:
    code, output, out = run(tmp_path, server, "--max-calls", "30")
    assert code == 0, output
    judge = judge_summary(out)
    assert judge["rows_judged"] > 0 and judge["rows_failed"] == 0
    assert judge["calls"] == server.hits == judge["rows_judged"] - judge["cached_calls"]  # exact duplicates hit the cache
    assert "failed)" not in (out / "report.md").read_text(encoding="utf-8")


def test_api_base_on_the_command_line_needs_no_config_and_no_key(tmp_path: Path, server: FaultServer,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`--model openai/NAME --api-base http://127.0.0.1:PORT/v1`: a local server, nothing else to set."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # the default cache dir is relative: keep it out of the repository
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(TRAIN), "--model", "openai/fault", "--api-base", server.api_base,
                                 "--max-calls", "4", "--out", str(out), *FAST])
    assert result.exit_code == 0, result.stdout + result.stderr
    judge = judge_summary(out)
    assert judge["rows_judged"] > 0 and judge["calls"] == server.hits > 0
    assert "data stays on this machine" in judge["where_data_went"]


def _first_attempt(mode: str) -> Any:
    seen: set[str] = set()

    def policy(body: dict[str, Any], n: int) -> str:
        key = json.dumps(body["messages"], sort_keys=True)
        if key in seen:
            return "ok"
        seen.add(key)
        return mode

    return policy


@pytest.mark.parametrize("mode", ["429", "500", "truncated", "schema",
                                  pytest.param("timeout", marks=pytest.mark.slow)])
def test_one_failure_per_row_is_retried_away(tmp_path: Path, mode: str) -> None:
    """Each distinct prompt fails once, then succeeds: no row is lost, and the retry waits for the
    backoff (or the 429's Retry-After, or the request timeout)."""
    with FaultServer(policy=_first_attempt(mode), retry_after=0.3, timeout_seconds=3.0) as server:
        code, output, out = run(tmp_path, server, "--max-calls", "80", retries=1, request_timeout=1.0)
    assert code == 0, output
    judge = judge_summary(out)
    assert judge["rows_failed"] == 0 and judge["rows_judged"] > 0
    prompts = len(server.request_times)
    assert server.counts[mode] == prompts and server.counts["ok"] >= prompts
    assert prompts >= judge["rows_judged"] - judge["cached_calls"]
    gaps = [t[1] - t[0] for t in server.request_times.values()]
    floor = {"429": 0.3, "timeout": 1.0}.get(mode, BACKOFF)  # Retry-After / request timeout / backoff
    assert min(gaps) >= floor * 0.9, (mode, min(gaps))


def test_budget_stops_a_run_against_a_failing_server(tmp_path: Path) -> None:
    """--max-calls 9 with retries 2 against a server failing 60% of requests: at most 9 rows are
    tried, at most 27 requests sent, rows whose retries all failed are marked, the run finishes."""
    with FaultServer(rates={"500": 0.6}, seed=3) as server:
        code, output, out = run(tmp_path, server, "--max-calls", "9", retries=2, max_concurrency=1)
    assert code == 0, output
    judge = judge_summary(out)
    assert judge["rows_judged"] > 0 and judge["rows_judged"] + judge["rows_failed"] <= 9
    assert server.hits == judge["calls"] <= 9 * 3
    if judge["rows_judged"] + judge["rows_failed"] == 9:
        assert judge["stop_reason"].startswith("budget exhausted") and "judge share of 9 calls" in judge["stop_reason"]
    else:  # the fault server's random verdicts fail the calibration canaries: the loop stops early, and says so
        assert "not informative" in judge["stop_reason"], judge["stop_reason"]


def test_a_server_failing_every_call_is_exit_3(tmp_path: Path) -> None:
    """Every request 500: after three rows fail every retry the run stops with one line, exit 3."""
    with FaultServer(rates={"500": 1.0}) as server:
        code, output, out = run(tmp_path, server, "--max-calls", "9", retries=2, max_concurrency=1)
    assert code == 3, output
    assert server.hits == 3 * 3
    assert "none succeeded" in output and "Traceback" not in output
    assert not (out / "report.md").exists()


def test_unreachable_model_is_exit_3_with_one_line(tmp_path: Path) -> None:
    """Nothing listens on the port: the run never claims success - exit 3, one error line naming the
    endpoint, no report or summary written, and the trace says why it stopped."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    code, output, out = run(tmp_path, dead, "--max-calls", "6", retries=0)
    assert code == 3, output
    errors = [ln for ln in output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "127.0.0.1" in errors[0], output
    assert "Traceback" not in output
    assert not (out / "report.md").exists() and not (out / "summary.json").exists()
    events = [json.loads(x) for x in (out / "trace.jsonl").read_text(encoding="utf-8").splitlines()]
    calls = [e for e in events if e["event"] == "call"]
    assert calls and not any(c["ok"] for c in calls)
    assert events[-1]["event"] == "stop" and events[-1]["reason"].startswith("error:")


@pytest.mark.parametrize("server", [{"rates": {"500": 0.5}, "seed": 1}], indirect=True)
def test_partial_judging_is_flagged_in_summary(tmp_path: Path, server: FaultServer) -> None:
    code, output, out = run(tmp_path, server, "--max-calls", "30", retries=0)
    assert code == 0, output
    judge = judge_summary(out)
    assert judge["rows_failed"] > 0 and judge["rows_judged"] > 0
    assert judge.get("partial") is True
    assert "partial" in (out / "report.md").read_text(encoding="utf-8").lower()


def test_startup_line_says_where_the_data_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Local endpoint: 'stays on this machine'; a remote provider is named and 'rows are sent'."""
    from audit_agent.llm.factory import describe_remote, open_client

    with FaultServer() as server:
        code, output, out = run(tmp_path, server, "--max-calls", "2")
    assert code == 0
    line = next(ln for ln in output.splitlines() if ln.startswith("Judge:"))
    assert "127.0.0.1" in line and "data stays on this machine" in line
    assert "data stays on this machine" in (out / "report.md").read_text(encoding="utf-8")
    remote = describe_remote("openai/gpt-4o-mini", None)
    assert "api.openai.com" in remote and "sent" in remote and "stays" not in remote
    hosted = describe_remote("hosted_vllm/qwen", "https://gpu.example.com/v1")
    assert "gpu.example.com" in hosted and "sent" in hosted
    monkeypatch.setenv("OPENAI_TEST_KEY", "sk-x")
    cfg = AuditConfig.model_validate({"llm": {"model": "openai/gpt-4o-mini", "api_key_env": "OPENAI_TEST_KEY",
                                              "cache_dir": str(tmp_path / "c")}})
    with open_client(cfg) as client:
        assert "api.openai.com" in client.description and "sent" in client.description


def test_embedded_description_says_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded model's start-up line (without starting llama.cpp: the server is a stand-in)."""
    import audit_agent.llm.embedded as embedded
    from audit_agent.llm.factory import open_client

    gguf = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf.write_bytes(b"x")

    class StandIn:
        litellm_model = "openai/smollm2"
        api_base = "http://127.0.0.1:9/v1"
        model_file = gguf
        model_id = "embedded:test"

        def __init__(self, **kwargs: Any) -> None:
            pass

        def __enter__(self) -> StandIn:
            return self

        def __exit__(self, *exc: Any) -> None:
            pass

    monkeypatch.setattr(embedded, "EmbeddedServer", StandIn)
    cfg = AuditConfig.model_validate({"llm": {"cache_dir": str(tmp_path / "c")}})
    with open_client(cfg) as client:
        assert "SmolLM2-135M-Instruct" in client.description
        assert "127.0.0.1" in client.description and "data stays on this machine" in client.description


def test_no_llm_sends_nothing(tmp_path: Path) -> None:
    """--no-llm: no model is contacted and no judge line is printed, even with a model configured."""
    with FaultServer() as server:
        code, output, out = run(tmp_path, server, "--no-llm")
    assert code == 0, output
    assert server.hits == 0 and "Judge:" not in output
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["judge"] is None
