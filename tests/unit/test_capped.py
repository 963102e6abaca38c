"""CappedClient: a job's share of the LLM budget."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from audit_agent.jobs.runner import llm_shares
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
    assert fake.usage.calls == 3 and capped.remaining() == 0


def test_cap_applies_to_batches() -> None:
    fake = FakeLLM(lambda prompt, variables, schema: schema(answer="x"))
    capped = CappedClient(fake, max_calls=2, job="paraphrase")
    out = capped.structured_many("p", [{"n": i} for i in range(5)], Reply)
    assert [isinstance(o, Reply) for o in out] == [True, True, False, False, False]
    assert isinstance(out[-1], BudgetExhausted)


def test_budget_shares_promise_every_job_some_calls(tmp_path) -> None:
    import pandas as pd

    from audit_agent.config import AuditConfig
    from audit_agent.context import AuditContext
    from audit_agent.dataset import Dataset
    from audit_agent.run_options import LLMJobs

    frame = pd.DataFrame({"id": range(8), "text": [f"t{i}" for i in range(8)], "label": list("abcdabcd")})
    for max_calls in (6, 14, 200, 2000):
        cfg = AuditConfig.model_validate({"llm": {"budget": {"max_calls": max_calls}}})
        ctx = AuditContext(train=Dataset(path=tmp_path / "d.csv", frame=frame), config=cfg)
        shares = llm_shares(ctx, LLMJobs())
        assert sum(shares.values()) == max_calls
        assert shares["judge"] >= max_calls // 2
        assert shares["guide"] >= 1 and shares["paraphrase"] >= 1
    off = llm_shares(ctx, LLMJobs(rewrite_guide=False, paraphrase_rows=0))
    assert off == {"judge": 2000, "guide": 0, "paraphrase": 0}
    one_label = AuditContext(train=Dataset(path=tmp_path / "d.csv", frame=frame.assign(label="a")), config=cfg)
    assert llm_shares(one_label, LLMJobs()) == {"judge": 0, "guide": 0, "paraphrase": 0}


class _AllCached:
    """An inner client whose every call is a cache hit: `usage.calls` (requests sent) never moves."""

    description = "cache only"

    def __init__(self) -> None:
        from audit_agent.llm.base import Usage

        self.usage = Usage()

    def structured(self, prompt, variables, schema, *, max_tokens=None):
        self.usage.cached += 1
        return schema(answer="cached")

    def structured_many(self, prompt, variables_list, schema, *, max_tokens=None):
        return [self.structured(prompt, v, schema) for v in variables_list]


def test_cache_hits_count_toward_the_share_so_reruns_stop_at_the_same_point() -> None:
    """A rerun's calls are all cache hits (no request sent); the share must still stop it at the same
    point, or a rerun would judge further than the first run and change the outputs."""
    inner = _AllCached()
    capped = CappedClient(inner, max_calls=2, job="judge")  # type: ignore[arg-type]
    capped.structured("p", {"n": 0}, Reply)
    capped.structured("p", {"n": 1}, Reply)
    with pytest.raises(BudgetExhausted):
        capped.structured("p", {"n": 2}, Reply)
    assert inner.usage.calls == 0 and inner.usage.cached == 2
    batch = CappedClient(inner, max_calls=1, job="judge").structured_many("p", [{}, {}], Reply)  # type: ignore[arg-type]
    assert isinstance(batch[0], Reply) and isinstance(batch[1], BudgetExhausted)
