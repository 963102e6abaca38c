"""The sqlite call cache, the cache key and the budget (no network, no litellm)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from audit_agent.config import BudgetConfig
from audit_agent.llm.base import BudgetExhausted
from audit_agent.llm.budget import Budget
from audit_agent.llm.cache import CallCache, cache_key

MESSAGES = [{"role": "system", "content": "judge"}, {"role": "user", "content": "row 1"}]
SCHEMA = {"type": "object", "properties": {"verdict": {"enum": ["ok", "bad"]}}}


def key(**changes: object) -> str:
    args: dict = {"model_id": "m", "messages": MESSAGES, "schema": SCHEMA, "temperature": 0.0,
                  "max_tokens": 100, "mode": "grammar"}
    args.update(changes)
    return cache_key(**args)


def test_key_is_stable_and_covers_every_input() -> None:
    assert key() == key()
    variants = [key(model_id="other"), key(messages=[*MESSAGES[:1], {"role": "user", "content": "row 2"}]),
                key(schema={"type": "object"}), key(temperature=0.5), key(max_tokens=50), key(mode="tools")]
    assert len({key(), *variants}) == 1 + len(variants)


def test_put_get_and_persistence_across_instances(tmp_path: Path) -> None:
    cache = CallCache(tmp_path)
    assert cache.get(key()) is None
    cache.put(key(), model_id="m", prompt="judge", schema_name="V", reply_json='{"verdict": "ok"}')
    assert cache.get(key()) == '{"verdict": "ok"}'
    cache.close()
    reopened = CallCache(tmp_path)
    assert reopened.get(key()) == '{"verdict": "ok"}' and len(reopened) == 1
    assert reopened.get(key(max_tokens=1)) is None


def test_concurrent_writes(tmp_path: Path) -> None:
    cache = CallCache(tmp_path)

    def write(i: int) -> None:
        for j in range(20):
            cache.put(key(model_id=f"{i}-{j}"), model_id="m", prompt="p", schema_name="V", reply_json="{}")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 80


def test_budget_refuses_before_the_limit_and_counts_settled_use() -> None:
    budget = Budget(BudgetConfig(max_calls=3, max_tokens=1000, max_cost_usd=0.01))
    r = budget.reserve(400, 0.004)
    budget.settle(r, tokens=300, cost_usd=0.003)
    with pytest.raises(BudgetExhausted, match="max_tokens"):
        budget.reserve(701)
    with pytest.raises(BudgetExhausted, match="max_cost_usd"):
        budget.reserve(10, 0.008)
    r2 = budget.reserve(700, 0.007)  # exactly up to the limits is allowed
    with pytest.raises(BudgetExhausted):  # the in-flight reservation counts too
        budget.reserve(1)
    budget.settle(r2, tokens=10, cost_usd=0.0)
    budget.settle(budget.reserve(10), tokens=10, cost_usd=0.0)
    assert budget.calls == 3 and budget.tokens == 320
    with pytest.raises(BudgetExhausted, match="max_requests=3"):
        budget.reserve(1)
    assert budget.remaining_requests() == 0


def test_budget_is_thread_safe() -> None:
    budget = Budget(BudgetConfig(max_calls=50, max_tokens=10**9, max_cost_usd=100))
    granted: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(30):
            try:
                r = budget.reserve(5)
            except BudgetExhausted:
                return
            with lock:
                granted.append(1)
            budget.settle(r, tokens=5, cost_usd=0.0)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 50 and budget.calls == 50 and budget.tokens == 250
