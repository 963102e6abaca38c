"""The protocol half of a local OpenAI-compatible chat-completions server for benchmarks and tests:
a threaded HTTP server on 127.0.0.1 that hands each request body, with the JSON schema its reply must
fit, to `answer(body, schema)` and wraps the reply as instructor expects it: a tool call when the
request has `tools` (instructor's TOOLS mode), else message content (`response_format` json_object
with a schema, llama.cpp style, or json_schema). GET /v1/models answers. Only the standard library."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

Answer = Callable[[dict[str, Any], dict[str, Any]], Any]
"""(request body, the schema the reply must fit or {}) -> the reply object."""


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part]
        return _resolve(node, root)
    for key in ("allOf", "anyOf", "oneOf"):
        if schema.get(key):
            return _resolve(schema[key][0], root)
    return schema


def properties(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The top-level properties of `schema`, each with its $ref resolved."""
    props = _resolve(schema, schema).get("properties", {}) if schema else {}
    return {name: _resolve(sub, schema) for name, sub in props.items()}


def fill_schema(schema: dict[str, Any], root: dict[str, Any], text: str) -> Any:
    """A value valid under `schema` (pydantic's JSON schemas); strings are words of `text`."""
    node = _resolve(schema, root)
    if "enum" in node:
        return node["enum"][0]
    if "const" in node:
        return node["const"]
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        return {name: fill_schema(sub, root, text) for name, sub in node.get("properties", {}).items()}
    if kind == "array":
        return [fill_schema(node.get("items", {}), root, text)] * max(1, int(node.get("minItems", 1)))
    if kind in ("integer", "number"):
        return node.get("minimum", 1)
    if kind == "boolean":
        return False
    words = " ".join(text.split()[:6]) or "ok"
    return words[:int(node.get("maxLength", 60))]


def request_schema(body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """(the JSON schema the reply must fit, the tool name when the reply is a tool call)."""
    tools = body.get("tools") or []
    if tools:
        fn = tools[0].get("function", {})
        return fn.get("parameters") or {}, fn.get("name", "reply")
    fmt = body.get("response_format") or {}
    return fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema") or {}, None


def completion(body: dict[str, Any], reply: Any, tool: str | None) -> dict[str, Any]:
    """A chat-completion response carrying `reply` as JSON (a tool call when `tool` is set)."""
    content = json.dumps(reply)
    message: dict[str, Any] = {"role": "assistant", "content": None if tool else content}
    if tool:
        message["tool_calls"] = [{"id": "call_0", "type": "function", "function": {"name": tool, "arguments": content}}]
    prompt_tokens = sum(len(str(m.get("content") or "")) for m in body.get("messages") or []) // 4
    return {"id": "chatcmpl-stub", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "stub"),
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool else "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(content) // 4,
                      "total_tokens": prompt_tokens + len(content) // 4}}


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up is not an error to print."""


class StubServer:
    """Threaded server on 127.0.0.1 (`port` 0: a free one); a context manager. Counts requests."""

    model_name = "stub"

    def __init__(self, answer: Answer, *, port: int = 0, latency: float = 0.0) -> None:
        self._answer = answer
        self.latency = latency
        self.lock = threading.Lock()
        self.requests = self.models_requests = self.tool_replies = self.content_replies = 0
        self._server = _QuietServer(("127.0.0.1", port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> StubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def respond(self, body: dict[str, Any]) -> dict[str, Any]:
        schema, tool = request_schema(body)
        reply = self._answer(body, schema)
        with self.lock:
            if tool:
                self.tool_replies += 1
            else:
                self.content_replies += 1
        return completion(body, reply, tool)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    with stub.lock:
                        stub.models_requests += 1
                    self._send(200, {"object": "list", "data": [{"id": stub.model_name, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                with stub.lock:
                    stub.requests += 1
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    self._send(400, {"error": {"message": "request body is not JSON"}})
                    return
                if not self.path.rstrip("/").endswith("chat/completions"):
                    self._send(404, {"error": {"message": f"no such endpoint: {self.path}"}})
                    return
                if stub.latency:
                    time.sleep(stub.latency)
                self._send(200, stub.respond(body))

        return Handler
