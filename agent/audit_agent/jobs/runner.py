"""Runs the LLM jobs of `audit`: starts (or connects to) the model once, splits the one budget into
per-job shares, and runs the judge, the guide rewrite and the paraphrase batch, each through the
same protocol (select -> call -> verify -> typed result), storing the results on the RunResult."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from audit_agent.context import AuditContext
from audit_agent.run_options import LLMJobs, Progress
from audit_agent.run_result import JobSkip, LLMUsage, RunResult

if TYPE_CHECKING:
    from audit_agent.findings import Finding
    from audit_agent.jobs.judge import JudgeSummary
    from audit_agent.jobs.trace import TraceSink
    from audit_agent.llm.base import LLMClient


def label_job_skip(ctx: AuditContext) -> str | None:
    """Why the label jobs (judge, guide, paraphrase) cannot run on this data, or None."""
    train = ctx.train
    if train.kind != "classification":
        return "needs class labels (this data has target texts)"
    if not train.has_labels:
        return "needs a label column"
    if len(train.label_set) < 2:
        return f"needs two or more labels (this file has only '{train.label_set[0]}')"
    return None


RESERVE_SHARE = 0.1
"""At most this share of `max_calls` (at least 2 calls) is promised to the guide rewrite and the
paraphrase batch together; the judge, which decides what the audit can say about the labels, gets
the rest (180 of the default 200)."""


def llm_shares(ctx: AuditContext, jobs: LLMJobs) -> dict[str, int]:
    """Split `max_calls`: the guide rewrite and the paraphrase batch are promised their calls
    (together at most `RESERVE_SHARE` of the budget, the paraphrase batch at least a third of that
    reserve when it runs at all); the judge gets the rest."""
    total = ctx.config.llm.budget.max_calls
    if label_job_skip(ctx) is not None:
        return {"judge": 0, "guide": 0, "paraphrase": 0}
    want_guide = 2 * len(ctx.train.label_set) + 10 if jobs.rewrite_guide else 0
    want_para = jobs.paraphrase_rows * jobs.paraphrase_per_row
    reserve = min(want_guide + want_para, max(2, int(total * RESERVE_SHARE)), total // 2)
    para = min(want_para, max(reserve // 3, 1)) if want_para and reserve else 0
    guide = min(want_guide, reserve - para)
    return {"judge": total - guide - para, "guide": guide, "paraphrase": para}


def run_llm_jobs(result: RunResult, jobs: LLMJobs, progress: Progress, trace_sink: TraceSink | None) -> None:
    """The judge, then the guide rewrite and the paraphrase batch, on `result` (filled in place)."""
    from audit_agent.jobs.guide import run_guide
    from audit_agent.jobs.paraphrase import run_paraphrase
    from audit_agent.llm.capped import CappedClient
    from audit_agent.llm.factory import open_client

    ctx = result.ctx
    skip = label_job_skip(ctx)
    if skip is not None:
        result.skipped_jobs = [JobSkip(job, skip) for job in ("judge", "guide", "paraphrase")]
        return
    shares = llm_shares(ctx, jobs)
    with open_client(ctx.config) as client, _second_client(ctx, client) as other:
        progress("judge", f"Judging rows ({client.description})", 0, None)

        def advance(step: int, total: int | None, description: str) -> None:
            progress("judge", description, step, total)

        judge_findings, result.judge = _run_judge(ctx, result, client, other, shares["judge"], trace_sink, advance)
        result.findings.extend(judge_findings)
        if shares["guide"]:
            progress("guide", "Rewriting the annotation guide", 0, 1)
            result.guide = run_guide(ctx, result.findings, CappedClient(client, shares["guide"], "guide"),
                                     old_guide_name=jobs.guide_name)
            progress("guide", "Rewrote the annotation guide", 1, 1)
        elif not jobs.rewrite_guide:
            result.skipped_jobs.append(JobSkip("guide", "turned off (--no-rewrite-guide)"))
        if shares["paraphrase"]:
            progress("paraphrase", "Proposing messy paraphrases", 0, 1)
            result.paraphrase = run_paraphrase(ctx, result.findings,
                                               CappedClient(client, shares["paraphrase"], "paraphrase"),
                                               per_row=jobs.paraphrase_per_row, max_rows=jobs.paraphrase_rows)
            progress("paraphrase", "Proposed messy paraphrases", 1, 1)
        elif not jobs.paraphrase_rows:
            result.skipped_jobs.append(JobSkip("paraphrase", "turned off (--paraphrase-rows 0)"))
        usage = client.usage
        result.llm = LLMUsage(model=client.description, shares=shares, calls=usage.calls, cached=usage.cached,
                              failed=usage.failed, prompt_tokens=usage.prompt_tokens,
                              completion_tokens=usage.completion_tokens, cost_usd=round(usage.cost_usd, 6),
                              server_restarts=usage.restarts)
        if other is not None:
            u = other.usage
            llm = result.llm
            llm.model += f"; second judge: {other.description}"
            llm.calls, llm.cached, llm.failed = llm.calls + u.calls, llm.cached + u.cached, llm.failed + u.failed
            llm.prompt_tokens += u.prompt_tokens
            llm.completion_tokens += u.completion_tokens
            llm.cost_usd = round(llm.cost_usd + u.cost_usd, 6)


@contextlib.contextmanager
def _second_client(ctx: AuditContext, first: LLMClient) -> Iterator[LLMClient | None]:
    """The second judge's client (`judge.second`), spending from the first client's budget; None
    when no second model is configured."""
    from audit_agent.llm.factory import open_client

    second = ctx.config.judge.second
    if second is None:
        yield None
        return
    llm = ctx.config.llm.model_copy(update={"model": second.model, "api_base": second.api_base,
                                            "api_key_env": second.api_key_env})
    with open_client(ctx.config.model_copy(update={"llm": llm}), budget=getattr(first, "budget", None)) as client:
        yield client


def _run_judge(ctx: AuditContext, result: RunResult, client: LLMClient, other: LLMClient | None, share: int,
               trace_sink: TraceSink | None, advance: Callable[[int, int | None, str], None]
               ) -> tuple[list[Finding], JudgeSummary]:
    """The judge within its share. With two judges (`judge.second` or `judge.second_framing`) every row
    is judged twice, so each judge gets half the share: another model through its own capped client,
    the second framing through the same one."""
    from audit_agent.jobs.judge import run_agent
    from audit_agent.llm.capped import CappedClient
    from audit_agent.tasks.judge import second_framing

    framing = second_framing(ctx, ctx.config.seed) if ctx.config.judge.second_framing else None
    if other is None:
        return run_agent(ctx, result.findings, CappedClient(client, share, "judge"), trace_sink=trace_sink,
                         progress=advance, second_framing=framing, budget_calls=share)
    half = share // 2
    return run_agent(ctx, result.findings, CappedClient(client, half, "judge"), trace_sink=trace_sink,
                     progress=advance, second=CappedClient(other, half, "second judge"), second_framing=framing,
                     budget_calls=2 * half)
