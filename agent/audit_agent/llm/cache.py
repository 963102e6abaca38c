"""Disk cache of LLM replies (sqlite, WAL): a rerun costs nothing, an interrupted run resumes.

One row per call, committed immediately, so a killed run loses at most the call in flight.
The key covers everything that decides the reply except where the model is served from (the port of
the embedded server changes every run). Only the validated JSON reply is stored - never API keys.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    prompt TEXT NOT NULL,
    schema_name TEXT NOT NULL,
    reply TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def cache_key(*, model_id: str, messages: Sequence[Mapping[str, str]], schema: Mapping[str, Any],
              temperature: float, max_tokens: int, mode: str) -> str:
    """sha256 over model id, rendered messages, schema JSON, temperature, reply limit and output mode."""
    payload = json.dumps({"model": model_id, "messages": list(messages), "schema": schema,
                          "temperature": temperature, "max_tokens": max_tokens, "mode": mode},
                         sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class CallCache:
    """Thread-safe key -> validated JSON reply store in `<cache_dir>/llm_calls.sqlite`."""

    def __init__(self, cache_dir: Path) -> None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.path = cache_dir / "llm_calls.sqlite"
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                     timeout=30.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(_SCHEMA)

    def get(self, key: str) -> str | None:
        """The stored reply JSON, or None."""
        with self._lock:
            row = self._conn.execute("SELECT reply FROM calls WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, *, model_id: str, prompt: str, schema_name: str, reply_json: str) -> None:
        """Store (or replace) one reply; committed before returning."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO calls (key, model, prompt, schema_name, reply, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key, model_id, prompt, schema_name, reply_json, time.time()))

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
