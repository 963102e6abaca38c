"""The protocol half of a local OpenAI-compatible chat-completions server, for benchmarks and tests
(standard library only; tests/faultserver.py builds on it too, so it never imports from tests/).

- `LocalServer`: a threaded HTTP server on 127.0.0.1 as a context manager; a subclass gives the
  request handler, a `JSONHandler` (quiet, JSON replies, GET /v1/models answered).
- `request_schema(body)` / `completion(body, content, tool)`: the JSON schema a request asks for and
  a reply wrapped as instructor expects it: a tool call when the request has `tools` (instructor's
  TOOLS mode), else message content (`response_format` json_object with a schema, llama.cpp style,
  or json_schema).
- `resolve`, `properties`, `fill_schema`: reading and filling the JSON schemas pydantic writes.
- `StubServer`: hands each request body, with its schema, to `answer(body, schema)`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

Answer = Callable[[dict[str, Any], dict[str, Any]], Any]
"""(request body, the schema the reply must fit or {}) -> the reply object."""


def resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its $ref followed (in `root`) and the first branch of an allOf/anyOf/oneOf taken."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part]
        return resolve(node, root)
    for key in ("allOf", "anyOf", "oneOf"):
        if schema.get(key):
            return resolve(schema[key][0], root)
    return schema


def properties(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The top-level properties of `schema`, each with its $ref resolved."""
    props = resolve(schema, schema).get("properties", {}) if schema else {}
    return {name: resolve(sub, schema) for name, sub in props.items()}


def fill_schema(schema: dict[str, Any], root: dict[str, Any], text: str) -> Any:
    """A value valid under `schema` (pydantic's JSON schemas); strings are words of `text`."""
    node = resolve(schema, root)
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


def completion(body: dict[str, Any], content: str, tool: str | None, *, finish: str | None = None,
               name: str = "stub") -> dict[str, Any]:
    """A chat-completion response carrying `content` (the reply's JSON text; a tool call when `tool` is
    set), finishing with `finish` (default: as a complete reply does)."""
    message: dict[str, Any] = {"role": "assistant", "content": None if tool else content}
    if tool:
        message["tool_calls"] = [{"id": "call_0", "type": "function", "function": {"name": tool, "arguments": content}}]
    prompt_tokens = sum(len(str(m.get("content") or "")) for m in body.get("messages") or []) // 4
    return {"id": f"chatcmpl-{name}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", name),
            "choices": [{"index": 0, "message": message,
                         "finish_reason": finish or ("tool_calls" if tool else "stop")}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(content) // 4,
                      "total_tokens": prompt_tokens + len(content) // 4}}


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: LocalServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (timeout, killed run) is expected here, not an error to print."""


class JSONHandler(BaseHTTPRequestHandler):
    """Answers in JSON and logs nothing; GET .../models lists the owning server's `model_name`."""

    protocol_version = "HTTP/1.1"
    server: _QuietServer

    def log_message(self, *args: Any) -> None:
        pass

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None,
                  trickle: bool = False) -> None:
        """`payload` as JSON (a str is sent as it is), in 64-byte pieces when `trickle`; a client that
        hung up is ignored."""
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
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

    def read_json(self) -> dict[str, Any] | None:
        """The request body as JSON; None (after answering 400) when it is not JSON."""
        length = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self.send_json(400, {"error": {"message": "request body is not JSON"}})
            return None

    def do_GET(self) -> None:
        owner = self.server.owner
        if self.path.rstrip("/").endswith("/models"):
            with owner.lock:
                owner.models_requests += 1
            self.send_json(200, {"object": "list", "data": [{"id": owner.model_name, "object": "model"}]})
        else:
            self.send_json(404, {"error": {"message": "not found"}})


class LocalServer:
    """Threaded server on 127.0.0.1 (`port` 0: a free one) answering with `_handler()`; a context
    manager. Counts GET .../models requests."""

    model_name = "stub"

    def __init__(self, *, port: int = 0) -> None:
        self.lock = threading.Lock()
        self.models_requests = 0
        self._server = _QuietServer(("127.0.0.1", port), self._handler())
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def _handler(self) -> type[JSONHandler]:
        raise NotImplementedError

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class StubServer(LocalServer):
    """Hands each chat-completions request to `answer(body, schema)`; counts requests and replies by kind."""

    def __init__(self, answer: Answer, *, port: int = 0, latency: float = 0.0) -> None:
        self._answer = answer
        self.latency = latency
        self.requests = self.tool_replies = self.content_replies = 0
        super().__init__(port=port)

    def respond(self, body: dict[str, Any]) -> dict[str, Any]:
        schema, tool = request_schema(body)
        reply = self._answer(body, schema)
        with self.lock:
            if tool:
                self.tool_replies += 1
            else:
                self.content_replies += 1
        return completion(body, json.dumps(reply), tool)

    def _handler(self) -> type[JSONHandler]:
        stub = self

        class Handler(JSONHandler):
            def do_POST(self) -> None:
                with stub.lock:
                    stub.requests += 1
                body = self.read_json()
                if body is None:
                    return
                if not self.path.rstrip("/").endswith("chat/completions"):
                    self.send_json(404, {"error": {"message": f"no such endpoint: {self.path}"}})
                    return
                if stub.latency:
                    time.sleep(stub.latency)
                self.send_json(200, stub.respond(body))

        return Handler
