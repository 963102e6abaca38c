"""trace.jsonl: the agent loop's events, one JSON line each, appended and flushed as they happen."""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import IO, Any

TRACE_FILE = "trace.jsonl"


class TraceFile:
    """A trace sink writing JSONL (a new run starts a fresh file). Use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = self.path.open("w", encoding="utf-8")

    def __call__(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            raise RuntimeError("trace file is closed")
        self._fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> TraceFile:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def read_trace(path: Path) -> list[dict[str, Any]]:
    """All events of a trace file, in order."""
    with Path(path).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
