"""CappedClient: a job's share of the LLM budget."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from audit_agent.llm.base import BudgetExhausted
from audit_agent.llm.capped import CappedClient
from tests.fakes import FakeLLM


class Reply(BaseModel):
    answer: str


def test_cap_counts_only_new_calls_and_stops_at_the_share() -> None:
    fake = FakeLLM(lambda prompt, variables, schema: schema(answer=str(variables["n"])))
    capped = CappedClient(fake, max_calls=3, job="judge")
    assert [capped.structured("p", {"n": i}, Reply).answer for i in range(3)] == ["0", "1", "2"]
    with pytest.raises(BudgetExhausted, match="judge share"):
        capped.structured("p", {"n": 9}, Reply)
    assert fake.usage.calls == 3


def test_cap_applies_to_batches() -> None:
    fake = FakeLLM(lambda prompt, variables, schema: schema(answer="x"))
    capped = CappedClient(fake, max_calls=2, job="paraphrase")
    out = capped.structured_many("p", [{"n": i} for i in range(5)], Reply)
    assert [isinstance(o, Reply) for o in out] == [True, True, False, False, False]
    assert isinstance(out[-1], BudgetExhausted)
