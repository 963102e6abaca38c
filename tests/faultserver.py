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
`response_format` requests are all answered. Only the standard library is used: the HTTP plumbing
and the reply format are bench/openai_stub.py's (`LocalServer`, `completion`).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[1] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from openai_stub import JSONHandler, LocalServer, completion, properties, request_schema, resolve  # noqa: E402

MODES = ("ok", "429", "500", "timeout", "truncated", "schema", "slow", "echo_auth", "401")
Policy = Callable[[dict[str, Any], int], str]
Replier = Callable[[dict[str, Any], list[dict[str, Any]]], dict[str, Any]]
_ROW = re.compile(r"<row>\s*(.*?)\s*</row>", re.DOTALL)


def fill_schema(schema: dict[str, Any], root: dict[str, Any], key: int, text: str) -> Any:
    """A value that satisfies `schema` (the JSON schemas pydantic writes), chosen by `key`."""
    node = resolve(schema, root)
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
    props = properties(schema)
    if isinstance(reply, dict) and {"verdict", "best_label", "evidence"} <= set(props):
        verdicts = ["supported"] * 6 + ["ambiguous", "contradicted"]
        reply["verdict"] = verdicts[key % len(verdicts)]
        labels = props["best_label"].get("enum")
        given = re.search(r"Given label:\s*(.+)", user)
        if reply["verdict"] == "supported" and given and (not labels or given.group(1).strip() in labels):
            reply["best_label"] = given.group(1).strip()
        elif labels:
            reply["best_label"] = labels[key % len(labels)]
        reply["evidence"] = " ".join(text.split()[:5])[:100] or "ok"
        reply["reason"] = "fault server reply"
    return reply


class FaultServer(LocalServer):
    """Threaded HTTP server on 127.0.0.1 (a free port); use as a context manager."""

    model_name = "fault"

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
        self.hits = 0
        self.counts: Counter[str] = Counter()
        self.ok_keys: Counter[str] = Counter()  # sha256 of the messages -> successful answers
        self.request_times: dict[str, list[float]] = {}  # messages key -> arrival times (retries)
        self.auth_headers: set[str] = set()
        self.bodies: list[dict[str, Any]] = []
        self.keep_bodies = True
        super().__init__()

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
        schema, tool = request_schema(body)
        if self.reply is not None:
            reply = self.reply(schema, messages)
        else:
            reply = judge_reply(schema, messages) if schema else {"answer": "ok"}
        if mode == "schema":
            reply = {"verdict": "definitely", "unexpected": True, "best_label": 42}
        text = json.dumps(reply)
        if mode == "truncated":
            return completion(body, text[: max(1, len(text) // 2)], tool, finish="length", name="fault")
        return completion(body, text, tool, name="fault")

    def _handler(self) -> type[JSONHandler]:
        fault = self

        class Handler(JSONHandler):
            def do_POST(self) -> None:
                body = self.read_json()
                if body is None:
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
                    self.send_json(429, {"error": {"message": "rate limited", "type": "rate_limit_error"}}, headers)
                elif mode == "500":
                    self.send_json(500, {"error": {"message": "internal error", "type": "server_error"}})
                elif mode == "echo_auth":
                    self.send_json(500, {"error": {"message": f"bad gateway for {auth}", "type": "server_error",
                                                   "headers": dict(self.headers.items())}})
                elif mode == "401":
                    self.send_json(401, {"error": {"message": f"Incorrect API key provided: {auth}",
                                                   "type": "invalid_request_error", "code": "invalid_api_key"}})
                elif mode == "timeout":
                    time.sleep(fault.timeout_seconds)
                    self.send_json(504, {"error": {"message": "too late"}})
                else:
                    reply = fault._answer(body, mode)
                    if mode in ("ok", "slow"):
                        with fault.lock:
                            fault.ok_keys[key] += 1
                    self.send_json(200, reply, trickle=mode == "slow")

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
