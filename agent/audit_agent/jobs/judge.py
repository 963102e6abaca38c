"""The agent loop's entry point: `run_agent` plans by the budget, judges (jobs/judge_rounds.py),
calibrates on canaries, verifies every claim, takes second looks where the model-free signals doubt
an answer (jobs/judge_second_look.py), and returns the judge's findings with a `JudgeSummary`
(what it did, how far to trust it, the label error rate per label, two judges' agreement)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from audit_agent.checks import KINDS
from audit_agent.context import AuditContext
from audit_agent.findings import Finding, Severity
from audit_agent.jobs.judge_calibration import Calibration
from audit_agent.jobs.judge_records import Answer, Judged, JudgeSpec, LoopOutcome, is_claim
from audit_agent.jobs.judge_rounds import UNREACHABLE_AFTER, AgentLoop, Progress, _budget_reason
from audit_agent.jobs.judge_second_look import SECOND_LOOK, SecondLooks, summarize
from audit_agent.jobs.judge_stats import (
    Disagreement,
    ErrorEstimate,
    JudgeAgreement,
    agreement,
    error_estimate,
    judge_answer,
)
from audit_agent.jobs.trace import Trace, TraceSink
from audit_agent.llm.base import LLMClient
from audit_agent.tasks.judge import Framing, Verdict
from audit_agent.verify.judge import self_contradictory

__all__ = ["UNREACHABLE_AFTER", "JudgeSpec", "JudgeSummary", "Judged", "_budget_reason", "run_agent"]

ERROR_DEFINITION = ("a random row counts as mislabelled when the judge says 'contradicted' (on its first or "
                    "second look) and verification confirms it (quote found, a model-free signal backs the "
                    "proposed label)")


@dataclass
class PlanSummary:
    """How the plan split the judge's calls (per judge)."""

    budget_rows: int = 0
    canaries: int = 0
    suspects_named: int = 0
    suspects_planned: int = 0
    sample_first_round: int = 0
    followup_budget: int = 0
    rows_by_kind: dict[str, int] = field(default_factory=dict)
    second_look_cap: int = 0


@dataclass
class JudgeSummary:
    """What the agent loop did, for the report's judge section and summary.json."""

    model: str
    where_data_went: str
    rows_judged: int = 0
    """Rows the (first) judge answered, calibration canaries included."""
    real_rows_judged: int = 0
    """Rows judged with their own label (canaries not included)."""
    canaries_judged: int = 0
    rows_failed: int = 0
    partial: bool = False
    verdicts: dict[str, int] = field(default_factory=dict)
    self_contradictory: int = 0
    verified: int = 0
    unverified: int = 0
    agreement_with_checks: float | None = None
    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    stop_reason: str = ""
    stop_kind: str = ""
    """budget | candidates | not_informative | max_rounds | skipped."""
    rounds: int = 0
    plan: PlanSummary = field(default_factory=PlanSummary)
    calibration: Calibration | None = None
    second_model: str | None = None
    second_calibration: Calibration | None = None
    agreement: JudgeAgreement | None = None
    error_estimate: ErrorEstimate | None = None
    beyond_checks: int = 0
    """Verified judge_contradicted rows no label-suspect check had named."""
    second_looks: SecondLooks = field(default_factory=SecondLooks)
    """Rows asked again in the second framing, and what that changed."""


def _model_name(ctx: AuditContext, client: LLMClient) -> str:
    """The model string of the client (looking through wrappers such as CappedClient)."""
    inner: Any = client
    while getattr(inner, "inner", None) is not None:
        inner = inner.inner
    name = getattr(inner, "model", None) or ctx.config.llm.model
    return str(name) if isinstance(name, str) and name else client.description


def _verified(a: Answer | None) -> bool:
    return a is not None and a.verification is not None and a.verification.verified


def _claim(j: Judged) -> tuple[str, Answer] | None:
    """The claim a row's finding reports: the first judge's, else the second's; a second look's when
    it is verified and the first claim is not (or is a verified "ambiguous" against a verified
    "contradicted"), or when it is the only claim."""
    first: tuple[str, Answer] | None = None
    for role in ("first", "second"):
        a = j.answers.get(role)
        if is_claim(a, j.row.label):
            assert a is not None
            first = role, a
            break
    look = j.answers.get(SECOND_LOOK)
    if look is None or not is_claim(look, j.row.label):
        return first
    if first is None:
        return SECOND_LOOK, look
    better = _verified(look) and (not _verified(first[1]) or (first[1].verdict.verdict is Verdict.AMBIGUOUS
                                                              and look.verdict.verdict is Verdict.CONTRADICTED))
    return (SECOND_LOOK, look) if better else first


def _finding(j: Judged, role: str, a: Answer, models: dict[str, str]) -> Finding:
    v, row = a.verdict, j.row
    assert a.verification is not None
    ok = a.verification.verified
    label_valid = a.verification.evidence.get("label_valid", True)
    tag = "verified" if ok else "unverified claim"
    who = {"first": "Judge", SECOND_LOOK: "Judge (second look)"}.get(role, "Second judge")
    if v.verdict is Verdict.CONTRADICTED:
        check = "judge_contradicted"
        severity = Severity.HIGH if ok else Severity.LOW
        invented = "" if label_valid else " (not a label)"
        message = f"{who} ({tag}): row {row.row_id} is labelled '{row.label}' but reads as '{v.best_label}'{invented}"
    else:
        check = "judge_ambiguous"
        severity = Severity.MEDIUM if ok else Severity.LOW
        if v.best_label == row.label:
            also = " (no other label named)"
        elif label_valid:
            also = f" (also fits '{v.best_label}')"
        else:
            also = f" (it named '{v.best_label}', which is not a label)"
        message = f"{who} ({tag}): row {row.row_id} labelled '{row.label}' is ambiguous{also}"
    labels = [row.label] + ([v.best_label] if v.best_label != row.label and label_valid else [])
    other = j.answers.get("first") if role != "first" else j.answers.get("second") or j.answers.get(SECOND_LOOK)
    return Finding(
        check=check, severity=severity, message=message, rows=[row.row_id], labels=labels,
        source="judge", verified=ok,
        evidence={
            "verdict": v.verdict.value, "given_label": row.label, "best_label": v.best_label,
            "quote": v.evidence, "reason": v.reason, "confidence": v.confidence.value,
            "verification": a.verification.evidence, "model": models[role],
            "picked_as": j.pick.kind, "picked_because": j.pick.reason, "round": j.round,
            "text_truncated": row.truncated, "judge": role,
            "other_verdict": other.verdict.verdict.value if other is not None else None,
            "other_best_label": other.verdict.best_label if other is not None else None,
            "second_look": j.second_look,
        },
    )


def _agreement_with_checks(judged: Sequence[Judged]) -> dict[str, Any]:
    """How often the judge agrees with the checks (suspects) and calls random sample rows supported."""
    suspect_total = suspect_agree = control_total = control_supported = 0
    for j in judged:
        a = j.answers.get("first")
        if a is None or j.canary is not None:
            continue
        if j.pick.kind == "sample":
            control_total += 1
            control_supported += a.verdict.verdict is Verdict.SUPPORTED
            continue
        claims = [KINDS[c].agreeing_verdicts for c in j.pick.checks if c in KINDS and KINDS[c].agreeing_verdicts]
        if j.pick.kind == "suspect" and claims:
            suspect_total += 1
            suspect_agree += is_claim(a, j.row.label) and any(a.verdict.verdict.value in ok for ok in claims)
    total = suspect_total + control_total
    return {
        "suspect_rows": suspect_total,
        "suspect_agree": round(suspect_agree / suspect_total, 4) if suspect_total else None,
        "control_rows": control_total,
        "control_supported": round(control_supported / control_total, 4) if control_total else None,
        "overall": round((suspect_agree + control_supported) / total, 4) if total else None,
    }


def _estimate(out: LoopOutcome, findings: Sequence[Finding]) -> ErrorEstimate | None:
    """Label error rate per label on the stratified random sample (rows without a verdict left out)."""
    plan = out.plan
    if plan is None:
        return None
    own = {j.row.row_id: j for j in out.judged if j.canary is None or j.canary.kind == "confirmed"}
    wrong = {str(f.rows[0]) for f in findings if f.check == "judge_contradicted" and f.verified and f.rows}
    flagged_rows = {str(f.rows[0]) for f in findings if f.rows}
    sample: dict[str, list[bool]] = {}
    flagged: dict[str, int] = {}
    for label, order in plan.sample_order.items():
        rows = [rid for rid in order[: plan.sample_size[label]] if rid in own]
        sample[label] = [rid in wrong for rid in rows]
        flagged[label] = sum(rid in flagged_rows for rid in rows)
    sizes = {label: len(order) for label, order in plan.sample_order.items()}
    return error_estimate(sample, sizes, flagged, ERROR_DEFINITION)


def _two_judges(out: LoopOutcome, label_set: list[str], second_name: str) -> JudgeAgreement:
    first: list[str] = []
    second: list[str] = []
    disagreements = []
    for j in out.judged:
        a, b = j.answers.get("first"), j.answers.get("second")
        if a is None or b is None or j.canary is not None:
            continue
        x = judge_answer(a.verdict.verdict.value, a.verdict.best_label, j.row.label)
        y = judge_answer(b.verdict.verdict.value, b.verdict.best_label, j.row.label)
        first.append(x)
        second.append(y)
        if x != y:
            disagreements.append(Disagreement(j.row.row_id, j.row.label, a.verdict.verdict.value, a.verdict.best_label,
                                              b.verdict.verdict.value, b.verdict.best_label))
    return agreement(first, second, label_set, second_judge=second_name, disagreements=disagreements)


def run_agent(ctx: AuditContext, findings: Sequence[Finding], client: LLMClient, *,
              trace_sink: TraceSink | None = None, progress: Progress | None = None,
              second: LLMClient | None = None, second_framing: Framing | None = None,
              budget_calls: int | None = None) -> tuple[list[Finding], JudgeSummary]:
    """Judge what the budget buys (suspects, a stratified random sample, follow-ups; calibration
    canaries mixed in) and return the judge's findings (`judge_contradicted`, `judge_ambiguous`;
    verified or explicitly unverified) and a summary.

    `second` / `second_framing`: a second judge (another client, or `client` again with another
    framing) reads every row too; each judge then gets half of `budget_calls` (default: what the client
    has left when it is a budget share, else `llm.budget.max_calls`)."""
    start = time.perf_counter()
    model = _model_name(ctx, client)
    summary = JudgeSummary(model=model, where_data_went=client.description, verdicts={v.value: 0 for v in Verdict})
    base = replace(client.usage)
    base_second = replace(second.usage) if second is not None else None
    trace = Trace(trace_sink)
    judges = [JudgeSpec(client, model)]
    if second is not None or second_framing is not None:
        other = second or client
        name = _model_name(ctx, other) + (" (second framing)" if second_framing is not None else "")
        judges.append(JudgeSpec(other, name, second_framing or Framing(), "second"))
        summary.second_model = name
    if budget_calls is None:
        remaining = getattr(client, "remaining", None)
        budget_calls = int(remaining()) if callable(remaining) else ctx.config.llm.budget.max_calls
    train = ctx.train
    if train.kind != "classification" or not train.has_labels:
        reason = "skipped: the judge needs class labels (this data has target texts)" \
            if train.kind != "classification" else "skipped: the training data has no labels"
        trace.event("plan", round=0, rows=0, note=reason)
        trace.event("stop", reason=reason, rounds=0, rows_judged=0)
        summary.stop_reason, summary.stop_kind = reason, "skipped"
        return [], summary
    try:
        out = AgentLoop(ctx, findings, judges, trace, progress, budget_calls).run()
    except Exception as exc:  # e.g. LLMError: the model cannot be used at all; the pipeline reports it
        trace.event("stop", reason=f"error: {type(exc).__name__}: {str(exc)[:300]}")
        raise
    models = {j.role: j.name for j in judges} | {SECOND_LOOK: f"{model} (second look, second framing)"}
    real = [j for j in out.judged if j.canary is None]
    found = []
    roles: dict[str, str] = {}
    for j in real:
        claim = _claim(j)
        if claim is not None:
            found.append(_finding(j, claim[0], claim[1], models))
            roles[j.row.row_id] = claim[0]
    _fill(summary, out, real, found, findings)
    note = out.look_note
    if not note and summary.calibration is not None and summary.calibration.informative is False:
        note = "the judge is not informative on the calibration canaries, so its answers get no second look"
    summary.second_looks = summarize(out.judged, out.look_cap, note, roles)
    if len(judges) == 2:
        summary.agreement = _two_judges(out, ctx.train.label_set, judges[1].name)
    _usage(summary, client, base, second, base_second)
    summary.seconds = round(time.perf_counter() - start, 3)
    trace.event("stop", reason=out.stop_reason, stop_kind=out.stop_kind, rounds=out.rounds,
                rows_judged=summary.rows_judged, canaries=summary.canaries_judged, rows_failed=out.failed,
                verdicts=summary.verdicts, self_contradictory=summary.self_contradictory, findings=len(found),
                verified=summary.verified, agreement=_agreement_with_checks(out.judged), calls=summary.calls,
                second_looks=summary.second_looks.taken, second_look_verified=summary.second_looks.new_verified,
                seconds=summary.seconds)
    return found, summary


def _fill(summary: JudgeSummary, out: LoopOutcome, real: list[Judged], found: list[Finding],
          findings: Sequence[Finding]) -> None:
    summary.rows_judged = sum("first" in j.answers for j in out.judged)
    summary.real_rows_judged = sum("first" in j.answers for j in real)
    summary.canaries_judged = summary.rows_judged - summary.real_rows_judged
    summary.rows_failed = out.failed
    summary.partial = out.failed > 0
    for j in real:
        a = j.answers.get("first")
        if a is not None:
            summary.verdicts[a.verdict.verdict.value] += 1
            summary.self_contradictory += self_contradictory(a.verdict, j.row.label)
    summary.verified = sum(f.verified for f in found)
    summary.unverified = len(found) - summary.verified
    summary.agreement_with_checks = _agreement_with_checks(out.judged)["overall"]
    summary.stop_reason, summary.stop_kind, summary.rounds = out.stop_reason, out.stop_kind, out.rounds
    summary.calibration = out.calibration.get("first")
    summary.second_calibration = out.calibration.get("second")
    kinds: dict[str, int] = {}
    for j in out.judged:
        kinds[j.pick.kind] = kinds.get(j.pick.kind, 0) + 1
    if out.plan is not None:
        p = out.plan
        summary.plan = PlanSummary(out.budget_rows, p.canaries, p.suspects_named, len(p.suspects), p.sample_target,
                                   p.followup_budget, kinds, out.look_cap)
    informative = summary.calibration is None or summary.calibration.informative is not False
    summary.error_estimate = _estimate(out, found) if informative else None
    named = {str(r) for f in findings if f.check in KINDS and KINDS[f.check].label_in_doubt and f.split == "train"
             for r in f.rows}
    summary.beyond_checks = sum(1 for f in found if f.check == "judge_contradicted" and f.verified
                                and str(f.rows[0]) not in named)


def _usage(summary: JudgeSummary, client: LLMClient, base: Any, second: LLMClient | None, base_second: Any) -> None:
    usage = client.usage
    summary.calls = usage.calls - base.calls
    summary.cached_calls = usage.cached - base.cached
    summary.prompt_tokens = usage.prompt_tokens - base.prompt_tokens
    summary.completion_tokens = usage.completion_tokens - base.completion_tokens
    summary.cost_usd = round(usage.cost_usd - base.cost_usd, 6)
    if second is not None and second.usage is not usage:
        u = second.usage
        summary.calls += u.calls - base_second.calls
        summary.cached_calls += u.cached - base_second.cached
        summary.prompt_tokens += u.prompt_tokens - base_second.prompt_tokens
        summary.completion_tokens += u.completion_tokens - base_second.completion_tokens
        summary.cost_usd = round(summary.cost_usd + u.cost_usd - base_second.cost_usd, 6)
