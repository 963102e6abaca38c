"""The run's one LLM budget (meanings in `config.BudgetConfig`): per-job shares of logical calls
(`share`), and the real spend: requests (retries included), tokens and USD. A request the budget does
not allow is refused before it is sent.

Thread-safe: a request first reserves its worst case (one request, estimated prompt tokens + reply
limit, estimated cost), then settles with what it really used. Cache hits never touch the real spend.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from audit_agent.config import BudgetConfig
from audit_agent.llm.base import BudgetExhausted


@dataclass(frozen=True)
class Reservation:
    """What one in-flight request may use at most."""

    tokens: int
    cost_usd: float


class Budget:
    """Tracks spent and in-flight requests/tokens/cost against a BudgetConfig, and hands out the
    per-job shares of logical calls."""

    def __init__(self, config: BudgetConfig, retries: int = 0) -> None:
        self.config = config
        self.max_requests = config.request_limit(retries)
        self._lock = threading.Lock()
        self.calls = 0  # requests sent (retries and failures included)
        self.tokens = 0
        self.cost_usd = 0.0
        self._pending_calls = 0
        self._pending_tokens = 0
        self._pending_cost = 0.0

    def reserve(self, tokens: int, cost_usd: float = 0.0) -> Reservation:
        """Reserve one request of at most `tokens` tokens / `cost_usd`; raises BudgetExhausted if any
        limit would be crossed."""
        cfg = self.config
        with self._lock:
            if self.calls + self._pending_calls + 1 > self.max_requests:
                raise BudgetExhausted(f"LLM budget: max_requests={self.max_requests} reached")
            if self.tokens + self._pending_tokens + tokens > cfg.max_tokens:
                raise BudgetExhausted(
                    f"LLM budget: max_tokens={cfg.max_tokens} would be exceeded "
                    f"({self.tokens} used, next request may use up to {tokens})")
            if self.cost_usd + self._pending_cost + cost_usd > cfg.max_cost_usd:
                raise BudgetExhausted(
                    f"LLM budget: max_cost_usd={cfg.max_cost_usd} would be exceeded "
                    f"(${self.cost_usd:.4f} used, next request may cost up to ${cost_usd:.4f})")
            self._pending_calls += 1
            self._pending_tokens += tokens
            self._pending_cost += cost_usd
            return Reservation(tokens, cost_usd)

    def settle(self, reservation: Reservation, *, tokens: int, cost_usd: float) -> None:
        """Replace a reservation by what the request really used (call it also when the request failed)."""
        with self._lock:
            self._pending_calls -= 1
            self._pending_tokens -= reservation.tokens
            self._pending_cost -= reservation.cost_usd
            self.calls += 1
            self.tokens += tokens
            self.cost_usd += cost_usd

    def remaining_requests(self) -> int:
        with self._lock:
            return max(0, self.max_requests - self.calls - self._pending_calls)
