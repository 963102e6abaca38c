"""A local OpenAI-compatible chat-completions server that injects faults, for tests and bench/load.py.

    with FaultServer(rates={"429": 0.1, "500": 0.05}, latency=0.05, seed=0) as server:
        config = {"llm": {"model": "openai/fault", "api_base": server.api_base, ...}}
        ...
        server.hits, server.counts["429"], server.ok_keys

Every request gets one *mode*: `ok` (a valid reply for the requested schema), `429` (with a
Retry-After header), `500`, `timeout` (sleeps `timeout_seconds` before answering), `truncated` (reply
JSON cut mid-way, finish_reason "length"), `schema` (valid JSON that violates the schema), `slow`
(a valid reply trickled out in small chunks), `echo_auth` (a 500 whose body echoes the request's
Authorization header - a careless provider's error that would leak the key into logs), `401` (an
authentication error that echoes the header too). The mode comes
from `policy(body, n)` when given, else a seeded draw from `rates` (the rest is `ok`).

`ok` replies are deterministic in the request's messages: a judge-shaped schema gets a verdict picked
by a hash of the row text, `best_label` from the schema's enum, and a verbatim quote from the row, so
reruns see identical answers. `reply(schema, messages)`, when given, writes the `ok` replies instead
(a scripted model for one job, e.g. chosen paraphrases). Tool calls (instructor TOOLS mode), `json_schema` and llama.cpp-style
`response_format` requests are all answered. Only the standard library is used.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

MODES = ("ok", "429", "500", "timeout", "truncated", "schema", "slow", "echo_auth", "401")
Policy = Callable[[dict[str, Any], int], str]
Replier = Callable[[dict[str, Any], list[dict[str, Any]]], dict[str, Any]]
_ROW = re.compile(r"<row>\s*(.*?)\s*</row>", re.DOTALL)


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part]
        return _resolve(node, root)
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return _resolve(schema["allOf"][0], root)
    if "anyOf" in schema:
        return _resolve(schema["anyOf"][0], root)
    return schema


def fill_schema(schema: dict[str, Any], root: dict[str, Any], key: int, text: str) -> Any:
    """A value that satisfies `schema` (the JSON schemas pydantic writes), chosen by `key`."""
    node = _resolve(schema, root)
    if "enum" in node:
        return node["enum"][key % len(node["enum"])]
    if "const" in node:
        return node["const"]
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        return {name: fill_schema(sub, root, key // 7 + i, text)
                for i, (name, sub) in enumerate(node.get("properties", {}).items())}
    if kind == "array":
        return [fill_schema(node.get("items", {}), root, key, text)]
    if kind == "integer":
        return int(node.get("minimum", 1))
    if kind == "number":
        return float(node.get("minimum", 0.5))
    if kind == "boolean":
        return bool(key % 2)
    limit = int(node.get("maxLength", 40))
    words = text.split()[:4] or ["ok"]
    return " ".join(words)[:limit]


def judge_reply(schema: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    """A deterministic reply for `schema`; judge schemas get a plausible verdict and a real quote."""
    user = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "user")
    match = _ROW.search(user)
    text = match.group(1) if match else user
    key = int(hashlib.sha256(user.encode("utf-8")).hexdigest()[:12], 16)
    reply = fill_schema(schema, schema, key, text)
    props = _resolve(schema, schema).get("properties", {})
    if isinstance(reply, dict) and {"verdict", "best_label", "evidence"} <= set(props):
        verdicts = ["supported"] * 6 + ["ambiguous", "contradicted"]
        reply["verdict"] = verdicts[key % len(verdicts)]
        labels = _resolve(props["best_label"], schema).get("enum")
        given = re.search(r"Given label:\s*(.+)", user)
        if reply["verdict"] == "supported" and given and (not labels or given.group(1).strip() in labels):
            reply["best_label"] = given.group(1).strip()
        elif labels:
            reply["best_label"] = labels[key % len(labels)]
        reply["evidence"] = " ".join(text.split()[:5])[:100] or "ok"
        reply["reason"] = "fault server reply"
    return reply


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (timeout, killed run) is expected here, not an error to print."""


class FaultServer:
    """Threaded HTTP server on 127.0.0.1 (a free port); use as a context manager."""

    def __init__(self, *, rates: dict[str, float] | None = None, policy: Policy | None = None,
                 latency: float = 0.0, seed: int = 0, timeout_seconds: float = 3.0,
                 retry_after: float | None = 0.0, reply: Replier | None = None,
                 hold_after: int | None = None) -> None:
        unknown = set(rates or {}) - set(MODES)
        if unknown:
            raise ValueError(f"unknown fault modes: {sorted(unknown)}")
        self.rates = dict(rates or {})
        self.policy = policy
        self.latency = latency
        self.timeout_seconds = timeout_seconds
        self.retry_after = retry_after
        self.reply = reply
        # requests after the `hold_after`-th wait until `released` is set (at most a minute), so a test can
        # interrupt a client while it is sure to be mid-run, however slow or loaded the machine is
        self.hold_after = hold_after
        self.released = threading.Event()
        self._rng = random.Random(seed)
        self.lock = threading.Lock()
        self.hits = 0
        self.counts: Counter[str] = Counter()
        self.ok_keys: Counter[str] = Counter()  # sha256 of the messages -> successful answers
        self.request_times: dict[str, list[float]] = {}  # messages key -> arrival times (retries)
        self.auth_headers: set[str] = set()
        self.bodies: list[dict[str, Any]] = []
        self.keep_bodies = True
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def reset_counts(self) -> None:
        with self.lock:
            self.hits = 0
            self.counts.clear()
            self.ok_keys.clear()
            self.request_times.clear()
            self.bodies.clear()

    # -- per request -----------------------------------------------------------------------
    def _mode(self, body: dict[str, Any], n: int) -> str:
        if self.policy is not None:
            return self.policy(body, n)
        draw = self._rng.random()
        for mode, rate in self.rates.items():
            if draw < rate:
                return mode
            draw -= rate
        return "ok"

    def _answer(self, body: dict[str, Any], mode: str) -> dict[str, Any]:
        messages = body.get("messages", [])
        tools = body.get("tools") or []
        if tools:
            fn = tools[0].get("function", {})
            schema, name = fn.get("parameters", {}), fn.get("name", "reply")
        else:
            fmt = body.get("response_format") or {}
            schema = fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema") or {}
            name = ""
        if self.reply is not None:
            reply = self.reply(schema, messages)
        else:
            reply = judge_reply(schema, messages) if schema else {"answer": "ok"}
        if mode == "schema":
            reply = {"verdict": "definitely", "unexpected": True, "best_label": 42}
        text = json.dumps(reply)
        finish = "tool_calls" if tools else "stop"
        if mode == "truncated":
            text, finish = text[: max(1, len(text) // 2)], "length"
        message: dict[str, Any] = {"role": "assistant", "content": None if tools else text}
        if tools:
            message["tool_calls"] = [{"id": "call_0", "type": "function",
                                      "function": {"name": name, "arguments": text}}]
        prompt_tokens = sum(len(str(m.get("content") or "")) for m in messages) // 4
        return {"id": "chatcmpl-fault", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "fault"),
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text) // 4,
                          "total_tokens": prompt_tokens + len(text) // 4}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fault = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None,
                      trickle: bool = False) -> None:
                data = json.dumps(payload).encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    if trickle:
                        for i in range(0, len(data), 64):
                            self.wfile.write(data[i:i + 64])
                            self.wfile.flush()
                            time.sleep(0.01)
                    else:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "fault", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    self._send(400, {"error": {"message": "request body is not JSON"}})
                    return
                key = hashlib.sha256(json.dumps(body.get("messages", []), sort_keys=True).encode()).hexdigest()
                auth = self.headers.get("Authorization", "")
                with fault.lock:
                    fault.hits += 1
                    n = fault.hits
                    mode = fault._mode(body, n)
                    fault.counts[mode] += 1
                    fault.request_times.setdefault(key, []).append(time.monotonic())
                    if auth:
                        fault.auth_headers.add(auth)
                    if fault.keep_bodies:
                        fault.bodies.append(body)
                if fault.hold_after is not None and n > fault.hold_after:
                    fault.released.wait(timeout=60)
                if fault.latency:
                    time.sleep(fault.latency)
                if mode == "429":
                    headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
                    self._send(429, {"error": {"message": "rate limited", "type": "rate_limit_error"}}, headers)
                elif mode == "500":
                    self._send(500, {"error": {"message": "internal error", "type": "server_error"}})
                elif mode == "echo_auth":
                    self._send(500, {"error": {"message": f"bad gateway for {auth}", "type": "server_error",
                                               "headers": dict(self.headers.items())}})
                elif mode == "401":
                    self._send(401, {"error": {"message": f"Incorrect API key provided: {auth}",
                                               "type": "invalid_request_error", "code": "invalid_api_key"}})
                elif mode == "timeout":
                    time.sleep(fault.timeout_seconds)
                    self._send(504, {"error": {"message": "too late"}})
                else:
                    reply = fault._answer(body, mode)
                    if mode in ("ok", "slow"):
                        with fault.lock:
                            fault.ok_keys[key] += 1
                    self._send(200, reply, trickle=mode == "slow")

        return Handler


def write_config(path: Path, server: FaultServer | str, *, cache_dir: Path, key_env: str = "FAKE_KEY",
                 **llm: Any) -> Path:
    """A YAML config pointing the CLI at `server` (or an api_base string) with the key in `key_env`."""
    api_base = server if isinstance(server, str) else server.api_base
    settings = {"api_base": api_base, "api_key_env": key_env, "cache_dir": str(cache_dir), "retries": 1,
                "request_timeout": 2.0, **llm}
    lines = ["llm:"] + [f"  {k}: {json.dumps(v)}" for k, v in settings.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
