"""A share of the run's LLM budget for one job, so the judge cannot spend what the guide rewrite and
the paraphrase batch were promised.

The share counts *logical* calls, cache hits included: a rerun (or a resumed run) replays exactly the
calls of the first run from the cache, stops at the same point and so produces the same outputs,
at no cost. Real spend (tokens, USD, requests with retries) is limited by the client's own budget.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from audit_agent.llm.base import BudgetExhausted, CallFailed, LLMClient, T, Usage


class CappedClient:
    """Wraps an `LLMClient`; after `max_calls` calls through it (cached or not) it raises BudgetExhausted."""

    def __init__(self, inner: LLMClient, max_calls: int, job: str) -> None:
        self.inner = inner
        self.max_calls = max_calls
        self.job = job
        self.used = 0
        self._lock = threading.Lock()

    @property
    def description(self) -> str:
        return self.inner.description

    @property
    def usage(self) -> Usage:
        return self.inner.usage

    def remaining(self) -> int:
        return max(0, self.max_calls - self.used)

    def _take(self, n: int) -> int:
        with self._lock:
            granted = min(n, self.max_calls - self.used)
            self.used += max(granted, 0)
            return max(granted, 0)

    def _spent(self) -> BudgetExhausted:
        return BudgetExhausted(f"LLM budget: the {self.job} share of {self.max_calls} calls is spent")

    def structured(self, prompt: str, variables: Mapping[str, Any], schema: type[T], *,
                   max_tokens: int | None = None) -> T:
        if not self._take(1):
            raise self._spent()
        return self.inner.structured(prompt, variables, schema, max_tokens=max_tokens)

    def structured_many(self, prompt: str, variables_list: Sequence[Mapping[str, Any]], schema: type[T], *,
                        max_tokens: int | None = None) -> list[T | CallFailed | BudgetExhausted]:
        allowed = self._take(len(variables_list))
        head = self.inner.structured_many(prompt, variables_list[:allowed], schema, max_tokens=max_tokens)
        return [*head, *([self._spent()] * (len(variables_list) - allowed))]
