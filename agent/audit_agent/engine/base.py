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

    def submit(self, fn: Callable[..., Any], *args: Any, outputs: int = 1) -> Any:
        """Run fn(*args) (references among args are resolved); one reference, or a list of
        `outputs` references when fn returns a sequence of that many pieces."""

    def get(self, ref: Any) -> Any:
        """The value behind a reference (or a list of values for a list of references)."""

    def wait(self, refs: list[Any]) -> None:
        """Block until the tasks behind `refs` have finished; their values stay where they are."""

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

    def submit(self, fn: Callable[..., Any], *args: Any, outputs: int = 1) -> Any:
        result = fn(*(_resolve(a) for a in args))
        if outputs == 1:
            return Done(result)
        return [Done(piece) for piece in result]

    def get(self, ref: Any) -> Any:
        if isinstance(ref, list):
            return [_resolve(r) for r in ref]
        return _resolve(ref)

    def wait(self, refs: list[Any]) -> None:
        return None

    def close(self) -> None:
        return None


class Window:
    """Submits a stage's tasks with at most `size` of them unfinished (default: twice the workers).

    A task queued behind busy workers still has its arguments fetched ahead; with every task of a
    stage queued at once, the store restores the spilled arguments of dozens of waiting tasks and
    evicts them again before they run (measured at 10M rows: 38 router tasks pulling 3.8 GB into a
    4 GB store). Here a task is submitted only once an earlier one has finished."""

    def __init__(self, engine: Engine, size: int | None = None) -> None:
        self.engine = engine
        self.size = size or max(2, 2 * engine.workers)
        self._running: deque[Any] = deque()

    def submit(self, fn: Callable[..., Any], *args: Any, outputs: int = 1) -> Any:
        """`Engine.submit`, after waiting for the oldest unfinished task when `size` are."""
        while len(self._running) >= self.size:
            self.engine.wait([self._running.popleft()])
        refs = self.engine.submit(fn, *args, outputs=outputs)
        self._running.append(refs[-1] if outputs > 1 else refs)
        return refs


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
