"""The `Engine` protocol: where the row-parallel stages of a partitioned audit run.

A stage is a plain function submitted once per partition (or per shuffle bucket). `submit` returns a
reference (or `outputs` references, for shuffle map tasks whose pieces go to different reducers);
a reference passed as an argument of another task is resolved to its value where that task runs, so
pieces move between stages without passing through the driver. `LocalEngine` runs every task at
once in this process (the reference implementation and the fallback); `RayEngine` (ray_engine.py)
runs them on a Ray cluster.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol


class Engine(Protocol):
    """Where partitioned stages run."""

    name: str
    workers: int

    def put(self, value: Any) -> Any:
        """Store `value` once for many tasks; returns a reference."""

    def submit(self, fn: Callable[..., Any], *args: Any, outputs: int = 1, fresh: bool = False) -> Any:
        """Run fn(*args) (references among args are resolved); one reference, or a list of
        `outputs` references when fn returns a sequence of that many pieces. `fresh`: a memory-heavy
        task whose worker process should exit afterwards (returning its memory to the system)."""

    def get(self, ref: Any) -> Any:
        """The value behind a reference (or a list of values for a list of references)."""

    def close(self) -> None:
        """Release the engine's resources (a cluster this engine started is stopped)."""


@dataclass
class Done:
    """A LocalEngine reference: the value, computed at submit time."""

    value: Any


def _resolve(arg: Any) -> Any:
    return arg.value if isinstance(arg, Done) else arg


class LocalEngine:
    """Runs every task immediately in this process: the same stages, no cluster."""

    name = "local"
    workers = 1

    def put(self, value: Any) -> Done:
        return Done(value)

    def submit(self, fn: Callable[..., Any], *args: Any, outputs: int = 1, fresh: bool = False) -> Any:
        result = fn(*(_resolve(a) for a in args))
        if outputs == 1:
            return Done(result)
        return [Done(piece) for piece in result]

    def get(self, ref: Any) -> Any:
        if isinstance(ref, list):
            return [_resolve(r) for r in ref]
        return _resolve(ref)

    def close(self) -> None:
        return None


def imap(engine: Engine, fn: Callable[..., Any], items: Iterable[Any], *shared: Any,
         window: int | None = None) -> Iterator[Any]:
    """fn(item, *shared) for every item, results yielded in order as they arrive, with at most
    `window` tasks in flight (default: twice the workers), so the driver holds a bounded number of
    results at a time."""
    window = window or max(2, 2 * engine.workers)
    pending: deque[Any] = deque()
    for item in items:
        pending.append(engine.submit(fn, item, *shared))
        if len(pending) >= window:
            yield engine.get(pending.popleft())
    while pending:
        yield engine.get(pending.popleft())
