"""Runs the LLM jobs of `audit`: starts (or connects to) the model once, splits the one budget into
per-job shares, and runs the judge, the guide rewrite and the paraphrase batch, each through the
same protocol (select -> call -> verify -> typed result), storing the results on the RunResult."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit_agent.dataset import AuditContext
from audit_agent.run_result import JobSkip, LLMUsage, RunResult

if TYPE_CHECKING:
    from audit_agent.api import LLMJobs, Progress
    from audit_agent.jobs.trace import TraceSink


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


def llm_shares(ctx: AuditContext, jobs: LLMJobs) -> dict[str, int]:
    """Split `max_calls`: the guide rewrite and the paraphrase batch are promised their calls
    (together at most half the budget, each at least a third of that reserve when it runs at all);
    the judge gets the rest."""
    total = ctx.config.llm.budget.max_calls
    if label_job_skip(ctx) is not None:
        return {"judge": 0, "guide": 0, "paraphrase": 0}
    want_guide = 2 * len(ctx.train.label_set) + 10 if jobs.rewrite_guide else 0
    want_para = jobs.paraphrase_rows * jobs.paraphrase_per_row
    reserve = min(want_guide + want_para, total // 2)
    para = min(want_para, max(reserve // 3, 1)) if want_para and reserve else 0
    guide = min(want_guide, reserve - para)
    return {"judge": total - guide - para, "guide": guide, "paraphrase": para}


def run_llm_jobs(result: RunResult, jobs: LLMJobs, progress: Progress, trace_sink: TraceSink | None) -> None:
    """The judge, then the guide rewrite and the paraphrase batch, on `result` (filled in place)."""
    from audit_agent.jobs.guide import run_guide
    from audit_agent.jobs.judge import run_agent
    from audit_agent.jobs.paraphrase import run_paraphrase
    from audit_agent.llm.capped import CappedClient
    from audit_agent.llm.factory import open_client

    ctx = result.ctx
    skip = label_job_skip(ctx)
    if skip is not None:
        result.skipped_jobs = [JobSkip(job, skip) for job in ("judge", "guide", "paraphrase")]
        return
    shares = llm_shares(ctx, jobs)
    with open_client(ctx.config) as client:
        progress("judge", f"Judging rows ({client.description})", 0, None)

        def advance(step: int, total: int | None, description: str) -> None:
            progress("judge", description, step, total)

        judge_findings, result.judge = run_agent(ctx, result.findings, CappedClient(client, shares["judge"], "judge"),
                                                 trace_sink=trace_sink, progress=advance)
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
