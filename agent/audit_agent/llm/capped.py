"""A share of the run's LLM budget for one job, so the judge cannot spend what the guide rewrite and
the paraphrase batch were promised."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from audit_agent.llm.base import BudgetExhausted, CallFailed, LLMClient, T, Usage


class CappedClient:
    """Wraps an `LLMClient`; after `max_calls` new (uncached) calls it raises BudgetExhausted."""

    def __init__(self, inner: LLMClient, max_calls: int, job: str) -> None:
        self.inner = inner
        self.max_calls = max_calls
        self.job = job
        self._start = inner.usage.calls

    @property
    def description(self) -> str:
        return self.inner.description

    @property
    def usage(self) -> Usage:
        return self.inner.usage

    def remaining(self) -> int:
        return max(0, self.max_calls - (self.inner.usage.calls - self._start))

    def structured(self, prompt: str, variables: Mapping[str, Any], schema: type[T], *,
                   max_tokens: int | None = None) -> T:
        if self.remaining() <= 0:
            raise BudgetExhausted(f"LLM budget: the {self.job} share of {self.max_calls} calls is spent")
        return self.inner.structured(prompt, variables, schema, max_tokens=max_tokens)

    def structured_many(self, prompt: str, variables_list: Sequence[Mapping[str, Any]], schema: type[T], *,
                        max_tokens: int | None = None) -> list[T | CallFailed | BudgetExhausted]:
        allowed = self.remaining()
        head = self.inner.structured_many(prompt, variables_list[:allowed], schema, max_tokens=max_tokens)
        spent = BudgetExhausted(f"LLM budget: the {self.job} share of {self.max_calls} calls is spent")
        return [*head, *([spent] * max(0, len(variables_list) - allowed))]
