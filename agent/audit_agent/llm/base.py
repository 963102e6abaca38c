"""The boundary every LLM task codes against: a client that returns a validated pydantic object."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

T = TypeVar("T", bound=BaseModel)


class BudgetExhausted(Exception):
    """The configured budget (calls, tokens or USD) is spent; no further call was made."""


class CallFailed(Exception):
    """One call failed after all retries (timeouts, 429/5xx, unparseable or schema-violating replies)."""


@dataclass
class Usage:
    """What the run has spent so far."""

    calls: int = 0
    cached: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    restarts: int = 0


class LLMClient(Protocol):
    """Structured calls: render prompt `prompt` (a template in prompts/) with `variables`,
    ask the model, validate the reply into `schema`. Cached on disk by model + prompt + schema."""

    @property
    def description(self) -> str:
        """Who answers and where the data goes, e.g. 'embedded SmolLM2-135M-Instruct (local)'."""
        ...

    @property
    def usage(self) -> Usage: ...

    def structured(self, prompt: str, variables: Mapping[str, Any], schema: type[T], *,
                   max_tokens: int | None = None) -> T:
        """Raises BudgetExhausted before a call the budget does not allow, CallFailed after retries."""
        ...

    def structured_many(self, prompt: str, variables_list: Sequence[Mapping[str, Any]], schema: type[T], *,
                        max_tokens: int | None = None) -> list[T | CallFailed | BudgetExhausted]:
        """`structured` over many inputs (concurrently where the provider allows), results in input
        order; a CallFailed or BudgetExhausted comes back in place of that item's reply."""
        ...
