"""The embedded default judge: llama-cpp-python's OpenAI-compatible server on a small GGUF model
shipped in a PyPI package (`llm.embedded_model`, see `embedded_models.py`).

`EmbeddedServer` starts `python -m llama_cpp.server` (by default through `llama_server.py`, which adds
grammar-first greedy sampling: same replies, faster) on 127.0.0.1 and a free port, waits until
GET /v1/models answers, and stops the whole process group on exit - also on Ctrl-C, errors, SIGTERM
and interpreter exit (atexit); on Linux the server also dies with its parent (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

from audit_agent.config import LLMConfig
from audit_agent.errors import LLMError
from audit_agent.llm import embedded_models
from audit_agent.llm.embedded_models import INSTALL_HINT as _INSTALL_HINT
from audit_agent.llm.embedded_models import embedded_model

DEFAULT_MODEL: str = LLMConfig.model_fields["embedded_model"].default
"""`llm.embedded_model`'s default (docs/benchmarks.md: the two candidates measured side by side)."""


def find_model_file(explicit: Path | None = None, model: str = DEFAULT_MODEL) -> Path:
    """The GGUF to serve: `explicit`, else the one shipped for `model` (see `embedded_models.py`)."""
    if explicit is not None:
        if not explicit.is_file():
            raise LLMError(f"{explicit}: embedded model file not found (llm.embedded_model_path)")
        return explicit
    return embedded_models.model_file(model)


def _require_llama_cpp_server() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        raise LLMError(f"the embedded model needs llama-cpp-python: {_INSTALL_HINT}")
    for module in ("uvicorn", "fastapi", "sse_starlette", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            raise LLMError(f"llama-cpp-python's server extra is missing ({module}): {_INSTALL_HINT}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def default_threads() -> int:
    """Half the cores, at most 4. llama.cpp's threads spin while they wait for each other, so on a
    busy 2-core machine 2 threads were measured 25x slower than 1 (24 s vs 1 s per judge call)."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the server gets SIGTERM when the process that started it dies (even by SIGKILL)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedServer:
    """Context manager around a local llama.cpp server process; use `api_base` / `litellm_model`."""

    def __init__(self, *, model_path: Path | None = None, n_ctx: int = 2048, n_threads: int | None = None,
                 start_timeout: float = 120.0, prompt_cache: bool = False, grammar_first: bool = True,
                 model: str = DEFAULT_MODEL) -> None:
        self.model = embedded_model(model)
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.n_threads = n_threads or default_threads()
        self.start_timeout = start_timeout
        self.prompt_cache = prompt_cache
        self.grammar_first = grammar_first
        self.port: int | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.Lock()
        self._old_sigterm: Any = None

    # -- what the client needs -------------------------------------------------------------
    @property
    def api_base(self) -> str:
        if self.port is None:
            raise LLMError("embedded model server is not running")
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def litellm_model(self) -> str:
        return f"openai/{self.model.alias}"

    @property
    def model_file(self) -> Path:
        return find_model_file(self.model_path, self.model.key)

    @property
    def model_id(self) -> str:
        """Identifies the served weights independently of the port (for the call cache)."""
        path = self.model_file
        return f"embedded:{path.name}:{path.stat().st_size}"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    # -- lifecycle -------------------------------------------------------------------------
    def command(self, model_file: Path, port: int) -> list[str]:
        """The server command line; a model with a chat format of ours always runs our entry point
        (which registers it), with the stock sampler when grammar-first is off (AUDIT_AGENT_GRAMMAR_FIRST=0
        in its environment, set by `start`)."""
        ours = self.grammar_first or self.model.chat_format is not None
        module = "audit_agent.llm.llama_server" if ours else "llama_cpp.server"
        cmd = [sys.executable, "-m", module, "--model", str(model_file),
               "--model_alias", self.model.alias, "--host", "127.0.0.1", "--port", str(port),
               "--n_ctx", str(self.n_ctx), "--n_threads", str(self.n_threads),
               "--n_threads_batch", str(self.n_threads), "--verbose", "False"]
        if self.model.chat_format is not None:
            cmd += ["--chat_format", self.model.chat_format]
        if self.prompt_cache:
            cmd += ["--cache", "True", "--cache_type", "ram", "--cache_size", str(256 << 20)]
        return cmd

    def start(self) -> EmbeddedServer:
        """Start the server and wait until it answers; raises LLMError with a one-line reason."""
        _require_llama_cpp_server()
        model_file = find_model_file(self.model_path)
        started = time.monotonic()
        with self._lock:
            if self._proc is not None:
                return self
            self.port = free_port()
            self._log = tempfile.TemporaryFile(prefix="audit-agent-llama-")  # noqa: SIM115 - closed in stop()
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "AUDIT_AGENT_GRAMMAR_FIRST": str(int(self.grammar_first))}
            self._proc = subprocess.Popen(
                self.command(model_file, self.port), stdin=subprocess.DEVNULL, stdout=self._log,
                stderr=subprocess.STDOUT, env=env, start_new_session=True, preexec_fn=_die_with_parent)
        atexit.register(self.stop)
        self._install_sigterm_handler()
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _wait_ready(self, started: float) -> None:
        url = f"{self.api_base}/models"
        while True:
            proc = self._proc
            if proc is None:
                raise LLMError("embedded model server was stopped while starting")
            if proc.poll() is not None:
                raise LLMError(f"embedded model server exited with code {proc.returncode} while starting: "
                               f"{self._last_log_line()}")
            try:
                with urllib.request.urlopen(url, timeout=2.0) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() - started > self.start_timeout:
                raise LLMError(f"embedded model server did not answer on {url} within "
                               f"{self.start_timeout:g} s (llm.embedded_start_timeout): {self._last_log_line()}")
            time.sleep(0.2)

    def last_log_line(self) -> str:
        """The server's last log line (empty when there is none); safe to call after it died."""
        try:
            return self._last_log_line()
        except Exception:
            return ""

    def _last_log_line(self) -> str:
        if self._log is None:
            return "no log"
        with contextlib.suppress(Exception):
            self._log.seek(0)
            lines = [ln.strip() for ln in self._log.read().decode("utf-8", "replace").splitlines() if ln.strip()]
            if lines:
                return lines[-1][:300]
        return "no output"

    def stop(self) -> None:
        """Terminate the server's process group (SIGTERM, then SIGKILL after 5 s). Idempotent."""
        with self._lock:
            proc, self._proc = self._proc, None
            log, self._log = self._log, None
        self._restore_sigterm_handler()
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if log is not None:
            log.close()
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # SIGTERM to the tool would skip atexit; turn it into SystemExit so the context manager cleans up.
    def _install_sigterm_handler(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return

        def _on_sigterm(signum: int, frame: FrameType | None) -> None:
            raise SystemExit(128 + signum)

        self._old_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)

    def _restore_sigterm_handler(self) -> None:
        if self._old_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
