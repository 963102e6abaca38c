"""`Window` keeps at most `size` of a stage's tasks unfinished: a task is submitted only after the
oldest unfinished one has finished, so the store never fetches the arguments of a whole stage at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from audit_agent.engine.base import LocalEngine, Window


class _Recorder:
    """An engine whose tasks finish only when waited for; it records how many are unfinished."""

    name = "recorder"
    workers = 2

    def __init__(self) -> None:
        self.unfinished: set[int] = set()
        self.most_unfinished = 0
        self.waited: list[int] = []
        self._next = 0

    def put(self, value: Any) -> Any:
        return value

    def submit(self, fn: Callable[..., Any], *args: Any, outputs: int = 1) -> Any:
        refs = list(range(self._next, self._next + outputs))
        self._next += outputs
        self.unfinished.add(refs[-1])
        self.most_unfinished = max(self.most_unfinished, len(self.unfinished))
        return refs if outputs > 1 else refs[0]

    def get(self, ref: Any) -> Any:
        return ref

    def wait(self, refs: list[Any]) -> None:
        for ref in refs:
            self.waited.append(ref)
            self.unfinished.discard(ref)

    def close(self) -> None:
        return None


def test_window_submits_a_task_only_after_the_oldest_unfinished_one_finished() -> None:
    engine = _Recorder()
    window = Window(engine)
    assert window.size == 4  # twice the workers
    refs = [window.submit(print, i, outputs=3) for i in range(10)]
    assert engine.most_unfinished == 4
    # each multi-output task is waited for by its last reference, oldest first
    assert engine.waited == [refs[i][-1] for i in range(6)]
    assert len(engine.unfinished) == 4


def test_window_size_and_single_outputs() -> None:
    engine = _Recorder()
    window = Window(engine, size=1)
    refs = [window.submit(print, i) for i in range(3)]
    assert engine.most_unfinished == 1
    assert engine.waited == refs[:2]


def test_window_on_the_local_engine_returns_the_values() -> None:
    engine = LocalEngine()
    window = Window(engine)
    refs = [window.submit(lambda x: [x, x * x], i, outputs=2) for i in range(5)]
    assert engine.get([r[1] for r in refs]) == [0, 1, 4, 9, 16]
