"""The agent loop: plan a stratified sample (suspects first), judge, verify every claim, look
closer where flagged verdicts cluster, and stop when the budget, the rounds or the news run out."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from audit_agent.checks import KINDS
from audit_agent.dataset import AuditContext
from audit_agent.errors import LLMError
from audit_agent.findings import Finding, Severity
from audit_agent.jobs.judge_plan import (
    Cluster,
    LabelIndex,
    Pick,
    find_clusters,
    plan_first_round,
    plan_followups,
    suspects_from_findings,
)
from audit_agent.jobs.trace import Trace, TraceSink
from audit_agent.llm.base import LLMClient
from audit_agent.tasks.judge import (
    JudgeVerdict,
    RowInput,
    Verdict,
    judge_batch,
    make_row_input,
    shared_variables,
)
from audit_agent.verify.judge import (
    SignalSource,
    Verification,
    canonical_verdict,
    self_contradictory,
    verify_verdict,
)

Progress = Callable[[int, int | None, str], None]

CLUSTER_MIN_FLAGGED = 2
"""Flagged (contradicted/ambiguous) verdicts on one label pair or template frame that make a cluster."""


@dataclass
class JudgeSummary:
    """What the agent loop did, for the report's judge section and summary.json."""

    model: str
    where_data_went: str
    rows_judged: int = 0
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
    rounds: int = 0


@dataclass
class Judged:
    """One judged row: why it was picked, what the judge said and what verification found."""

    pick: Pick
    row: RowInput
    verdict: JudgeVerdict
    verification: Verification
    round: int


def _model_name(ctx: AuditContext, client: LLMClient) -> str:
    """The model string of the client (looking through wrappers such as CappedClient)."""
    inner: Any = client
    while getattr(inner, "inner", None) is not None:
        inner = inner.inner
    name = getattr(inner, "model", None) or ctx.config.llm.model
    return str(name) if isinstance(name, str) and name else client.description


def _is_claim(j: Judged) -> bool:
    """A verdict that flags the row (contradicted or ambiguous) and does not contradict itself."""
    return j.verdict.verdict is not Verdict.SUPPORTED and not self_contradictory(j.verdict, j.row.label)


def _finding(j: Judged, model: str) -> Finding:
    v, row = j.verdict, j.row
    ok = j.verification.verified
    label_valid = j.verification.evidence.get("label_valid", True)
    tag = "verified" if ok else "unverified claim"
    if v.verdict is Verdict.CONTRADICTED:
        check = "judge_contradicted"
        severity = Severity.HIGH if ok else Severity.LOW
        invented = "" if label_valid else " (not a label)"
        message = f"Judge ({tag}): row {row.row_id} is labelled '{row.label}' but reads as '{v.best_label}'{invented}"
    else:
        check = "judge_ambiguous"
        severity = Severity.MEDIUM if ok else Severity.LOW
        if v.best_label == row.label:
            also = " (no other label named)"
        elif label_valid:
            also = f" (also fits '{v.best_label}')"
        else:
            also = f" (it named '{v.best_label}', which is not a label)"
        message = f"Judge ({tag}): row {row.row_id} labelled '{row.label}' is ambiguous{also}"
    labels = [row.label] + ([v.best_label] if v.best_label != row.label and label_valid else [])
    return Finding(
        check=check, severity=severity, message=message, rows=[row.row_id], labels=labels,
        source="judge", verified=ok,
        evidence={
            "verdict": v.verdict.value, "given_label": row.label, "best_label": v.best_label,
            "quote": v.evidence, "reason": v.reason, "confidence": v.confidence.value,
            "verification": j.verification.evidence, "model": model,
            "picked_as": j.pick.kind, "picked_because": j.pick.reason, "round": j.round,
            "text_truncated": row.truncated,
        },
    )


def _agreement(judged: Sequence[Judged]) -> dict[str, Any]:
    """How often the judge agrees with the checks (suspects) and calls random rows supported (controls)."""
    suspect_total = suspect_agree = control_total = control_supported = 0
    for j in judged:
        if j.pick.kind == "control":
            control_total += 1
            control_supported += j.verdict.verdict is Verdict.SUPPORTED
            continue
        claims = [KINDS[c].agreeing_verdicts for c in j.pick.checks if c in KINDS and KINDS[c].agreeing_verdicts]
        if j.pick.kind == "suspect" and claims:
            suspect_total += 1
            suspect_agree += _is_claim(j) and any(j.verdict.verdict.value in ok for ok in claims)
    total = suspect_total + control_total
    return {
        "suspect_rows": suspect_total,
        "suspect_agree": round(suspect_agree / suspect_total, 4) if suspect_total else None,
        "control_rows": control_total,
        "control_supported": round(control_supported / control_total, 4) if control_total else None,
        "overall": round((suspect_agree + control_supported) / total, 4) if total else None,
    }


UNREACHABLE_AFTER = 3
"""Calls that fail (after all retries) before any succeeds: the model is unreachable, exit 3."""


def run_agent(ctx: AuditContext, findings: Sequence[Finding], client: LLMClient, *,
              trace_sink: TraceSink | None = None,
              progress: Progress | None = None) -> tuple[list[Finding], JudgeSummary]:
    """Judge a stratified, suspects-first sample of training rows and return the judge's findings
    (`judge_contradicted`, `judge_ambiguous`; verified or explicitly unverified) and a summary."""
    start = time.perf_counter()
    model = _model_name(ctx, client)
    summary = JudgeSummary(model=model, where_data_went=client.description,
                           verdicts={v.value: 0 for v in Verdict})
    base = replace(client.usage)
    trace = Trace(trace_sink)
    try:
        judged, stop_reason, rounds, failed = _loop(ctx, findings, client, trace, progress)
    except Exception as exc:  # e.g. LLMError: the model cannot be used at all; the pipeline reports it
        trace.event("stop", reason=f"error: {type(exc).__name__}: {str(exc)[:300]}")
        raise
    out = [_finding(j, model) for j in judged if _is_claim(j)]
    agreement = _agreement(judged)
    summary.rows_judged = len(judged)
    summary.rows_failed = failed
    summary.partial = failed > 0
    for j in judged:
        summary.verdicts[j.verdict.verdict.value] += 1
    summary.self_contradictory = sum(self_contradictory(j.verdict, j.row.label) for j in judged)
    summary.verified = sum(f.verified for f in out)
    summary.unverified = len(out) - summary.verified
    summary.agreement_with_checks = agreement["overall"]
    usage = client.usage
    summary.calls = usage.calls - base.calls
    summary.cached_calls = usage.cached - base.cached
    summary.prompt_tokens = usage.prompt_tokens - base.prompt_tokens
    summary.completion_tokens = usage.completion_tokens - base.completion_tokens
    summary.cost_usd = round(usage.cost_usd - base.cost_usd, 6)
    summary.stop_reason = stop_reason
    summary.rounds = rounds
    summary.seconds = round(time.perf_counter() - start, 3)
    trace.event("stop", reason=stop_reason, rounds=rounds, rows_judged=len(judged), rows_failed=failed,
                verdicts=summary.verdicts, self_contradictory=summary.self_contradictory,
                findings=len(out), verified=summary.verified,
                agreement=agreement, calls=summary.calls, seconds=summary.seconds)
    return out, summary


def _loop(ctx: AuditContext, findings: Sequence[Finding], client: LLMClient, trace: Trace,
          progress: Progress | None) -> tuple[list[Judged], str, int, int]:
    """The rounds; returns (judged rows, stop reason, rounds run, rows whose call failed)."""
    cfg = ctx.config
    train = ctx.train
    if train.kind != "classification" or not train.has_labels:
        reason = "skipped: the judge needs class labels (this data has target texts)" \
            if train.kind != "classification" else "skipped: the training data has no labels"
        trace.event("plan", round=0, rows=0, note=reason)
        return [], reason, 0, 0
    frame = train.frame
    index = LabelIndex([str(i) for i in frame["id"].tolist()],
                       [None if v is None or v != v else str(v) for v in frame["label"].tolist()], seed=cfg.seed)
    texts = frame["text"].tolist()
    signals = SignalSource(ctx)
    suspects = suspects_from_findings(findings, index.id_pos)
    templates = [f for f in findings if f.check in KINDS and KINDS[f.check].frames(f) and f.split == "train"]
    picks = plan_first_round(index, suspects, cfg.sample)
    trace.event("plan", round=1, labels=len(index.label_set), rows=len(picks),
                suspects_available=len(suspects), suspects=sum(p.kind == "suspect" for p in picks),
                controls=sum(p.kind == "control" for p in picks), per_label=cfg.sample.per_label,
                control_share=cfg.sample.control_share, max_rounds=cfg.sample.max_rounds,
                budget_calls=cfg.llm.budget.max_calls, model=client.description)
    shared = shared_variables(ctx)
    judged: list[Judged] = []
    taken: set[str] = set()
    done_clusters: set[str] = set()
    failed = 0
    rounds = 0
    planned = 0
    chunk = max(1, cfg.llm.max_concurrency)
    while True:
        if not picks:
            return judged, ("nothing to judge" if rounds == 0 else "no rows left to follow up"), rounds, failed
        rounds += 1
        planned += len(picks)
        if progress is not None:
            progress(0, planned, f"judge round {rounds}")
        for p in picks:
            taken.add(p.row_id)
            trace.event("pick", round=rounds, row_id=p.row_id, label=p.label, kind=p.kind, reason=p.reason)
        flagged_before = sum(_is_claim(j) for j in judged)
        exhausted: str | bool = False
        for start in range(0, len(picks), chunk):
            batch = picks[start:start + chunk]
            rows = [make_row_input(ctx, p.row_id, texts[index.id_pos[p.row_id]], p.label) for p in batch]
            t0 = time.perf_counter()
            outcomes = judge_batch(client, ctx, rows, shared=shared)
            per_call = round((time.perf_counter() - t0) / len(rows), 3)
            for pick, outcome in zip(batch, outcomes, strict=True):
                trace.event("call", round=rounds, row_id=pick.row_id, ok=outcome.verdict is not None,
                            error=outcome.error, budget_refused=outcome.budget, seconds=per_call,
                            truncated=outcome.row.truncated)
                if outcome.budget:
                    exhausted = outcome.error or "budget exhausted"
                    continue
                if progress is not None:
                    progress(1, None, f"judge round {rounds}")
                if outcome.verdict is None:
                    failed += 1
                    if not judged and failed >= UNREACHABLE_AFTER:
                        raise LLMError(f"{client.description}: the first {failed} calls all failed after retries, "
                                       f"none succeeded ({str(outcome.error)[:200]})")
                    continue
                j = _verify(outcome.row, outcome.verdict, pick, rounds, index.label_set, signals)
                judged.append(j)
                trace.event("verdict", round=rounds, row_id=pick.row_id, **outcome.verdict.model_dump(mode="json"))
                trace.event("verification", round=rounds, row_id=pick.row_id, verified=j.verification.verified,
                            **j.verification.evidence)
            if exhausted:
                return judged, _budget_reason(exhausted), rounds, failed
        if rounds >= cfg.sample.max_rounds:
            return judged, "max rounds reached", rounds, failed
        flagged = [(j.row.row_id, j.row.label, j.verdict.best_label) for j in judged if _is_claim(j)]
        if len(flagged) == flagged_before:
            trace.event("followup", round=rounds, clusters=[], rows=0, decision="stop: no new flagged verdicts")
            return judged, "a round turned up nothing new", rounds, failed
        clusters = [c for c in find_clusters(flagged, templates, min_flagged=CLUSTER_MIN_FLAGGED)
                    if c.key not in done_clusters]
        if not clusters:
            trace.event("followup", round=rounds, clusters=[], rows=0, decision="stop: no new clusters")
            return judged, "no new clusters", rounds, failed
        done_clusters.update(c.key for c in clusters)
        picks = plan_followups(clusters, index, taken, cfg.sample, rank_by_label=_ranker(signals))
        trace.event("followup", round=rounds, clusters=[_cluster_info(c) for c in clusters], rows=len(picks),
                    decision=f"round {rounds + 1}: {len(picks)} rows in {len(clusters)} clusters")


def _budget_reason(message: str | bool) -> str:
    """'budget exhausted', plus which limit when the client said so (calls, tokens or USD)."""
    text = str(message)
    detail = text.split("LLM budget:", 1)[1].strip() if "LLM budget:" in text else ""
    return f"budget exhausted ({detail})" if detail else "budget exhausted"


def _ranker(signals: SignalSource) -> Callable[[Sequence[int], str], list[int]] | None:
    return signals.rank_rows_by_label if signals.oof is not None else None


def _cluster_info(c: Cluster) -> dict[str, Any]:
    return {"kind": c.kind, "key": c.key, "flagged": c.flagged}


def _verify(row: RowInput, verdict: JudgeVerdict, pick: Pick, round_no: int, label_set: list[str],
            signals: SignalSource) -> Judged:
    verdict, raw_label = canonical_verdict(verdict, label_set)
    row_signals = signals.for_row(row.row_id, verdict.best_label, row.label)
    result = verify_verdict(verdict, text=row.full_text, given_label=row.label, label_set=label_set,
                            signals=row_signals)
    if raw_label is not None:
        result.evidence["best_label_as_written"] = raw_label
    return Judged(pick, row, verdict, result, round_no)
