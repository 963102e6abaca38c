"""The protocol every LLM job follows: select -> call -> verify -> typed result.

- `select(ctx, findings)`: deterministic; what to ask the model about (rows, label pairs, ...), built
  from the loaded data and the checks' findings.
- `call(client, plan)`: the only stage that talks to the model (through `llm/`, so the cache, retries
  and the one budget apply); returns the replies as they came.
- `verify(ctx, plan, replies, client)`: deterministic checks of every reply; turns replies into the
  job's typed result. (`client` is there for the optional model-assisted checks a job may add; a job
  that has none ignores it.)

`run_job` runs the three stages once. The judge (jobs/judge.py) runs them in rounds: each round's
plan depends on what the previous round's verified verdicts showed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from audit_agent.context import AuditContext
from audit_agent.findings import Finding
from audit_agent.llm.base import LLMClient

PlanT = TypeVar("PlanT")
RepliesT = TypeVar("RepliesT")
ResultT = TypeVar("ResultT", covariant=True)


class Job(Protocol[PlanT, RepliesT, ResultT]):
    """An LLM job (see the module docstring)."""

    name: str

    def select(self, ctx: AuditContext, findings: Sequence[Finding]) -> PlanT: ...

    def call(self, client: LLMClient, plan: PlanT) -> RepliesT: ...

    def verify(self, ctx: AuditContext, plan: PlanT, replies: RepliesT, client: LLMClient) -> ResultT: ...


def run_job(job: Job[PlanT, RepliesT, ResultT], ctx: AuditContext, findings: Sequence[Finding],
            client: LLMClient) -> ResultT:
    """select -> call -> verify, once."""
    plan = job.select(ctx, findings)
    return job.verify(ctx, plan, job.call(client, plan), client)
