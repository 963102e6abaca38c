"""The agent loop's trace: one event per step (plan, pick, call, verdict, calibration, verification, followup,
stop), kept in memory for the result and handed, as it happens, to an optional sink (the report
layer's JSONL writer, so a crashed run still leaves its trace)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

EVENTS = ("plan", "pick", "call", "verdict", "calibration", "verification", "followup", "stop")

TraceSink = Callable[[dict[str, Any]], None]


class Trace:
    """An ordered event log: `event(kind, **fields)` records `{"seq", "t", "event", ...fields}`."""

    def __init__(self, sink: TraceSink | None = None) -> None:
        self.sink = sink
        self.events: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {}
        self._start = time.perf_counter()

    def event(self, kind: str, /, **fields: Any) -> None:
        """Record one event and pass it to the sink."""
        if kind not in EVENTS:
            raise ValueError(f"unknown trace event '{kind}'")
        self.counts[kind] = self.counts.get(kind, 0) + 1
        record = {"seq": len(self.events) + 1, "t": round(time.perf_counter() - self._start, 3), "event": kind,
                  **fields}
        self.events.append(record)
        if self.sink is not None:
            self.sink(record)
