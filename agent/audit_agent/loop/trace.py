"""The agent loop's JSONL trace: one line per event (plan, pick, call, verdict, verification,
followup, stop), appended and flushed as it happens so a crashed run still leaves its trace."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

EVENTS = ("plan", "pick", "call", "verdict", "verification", "followup", "stop")


class Trace:
    """Append-only JSONL event log (a new run starts a fresh file unless `append`).
    Use as a context manager, or call `close()`."""

    def __init__(self, path: Path, *, append: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = self.path.open("a" if append else "w", encoding="utf-8")
        self._seq = 0
        self._start = time.perf_counter()
        self.counts: dict[str, int] = {}

    def event(self, kind: str, /, **fields: Any) -> None:
        """Write one event line `{"seq", "t", "event", ...fields}` and flush it."""
        if kind not in EVENTS:
            raise ValueError(f"unknown trace event '{kind}'")
        if self._fh is None:
            raise RuntimeError("trace is closed")
        self._seq += 1
        self.counts[kind] = self.counts.get(kind, 0) + 1
        record = {"seq": self._seq, "t": round(time.perf_counter() - self._start, 3), "event": kind, **fields}
        self._fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> Trace:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def read_trace(path: Path) -> list[dict[str, Any]]:
    """All events of a trace file, in order."""
    with Path(path).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
