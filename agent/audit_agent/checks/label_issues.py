"""Label checks built on the out-of-fold classifier: rows whose label looks wrong (`label_issue`)
and label pairs that collide (`label_overlap`).

`label_issue` reports the per-row signals of `features.label_signals.detect_label_issues` (through
`ctx.features.label_issues`, which an engine may supply); bench/quality.py measures that detector.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audit_agent.checks.base import Check
from audit_agent.context import AuditContext
from audit_agent.features.classifier import OOFResult
from audit_agent.features.label_signals import CLEANLAB_MAX_ROWS
from audit_agent.findings import Evidence, Finding, Record, RowId, Severity

HIGH_THRESHOLD = 0.997
MAX_ISSUE_FINDINGS = 500
OVERLAP_HIGH_SHARE = 0.25
OVERLAP_MIN_ROWS = 3
OVERLAP_TOP = 20


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python int/float/str it holds (findings must be JSON-serialisable)."""
    return value.item() if isinstance(value, np.generic) else value


def _text(ctx: AuditContext, pos: int, limit: int = 300) -> str:
    return str(ctx.train.frame["text"].iat[pos])[:limit]


def _label_issue(ctx: AuditContext) -> list[Finding]:
    """One finding per flagged row (top 500 by score) plus one summary finding."""
    oof = ctx.features.oof
    res = ctx.features.label_issues(ctx.config.checks.label_issue_threshold)
    high = max(HIGH_THRESHOLD, res.threshold)
    ids = ctx.train.frame["id"].tolist()
    ranked = res.ranked()
    n_lab = int(oof.labelled.sum())
    findings: list[Finding] = []
    for pos in ranked[:MAX_ISSUE_FINDINGS]:
        g, s = oof.classes[oof.given[pos]], oof.classes[res.suggested[pos]]
        signals = ["classifier"]
        if res.p_knn[pos] > 0.5:
            signals.append("neighbours")
        if res.cleanlab[pos]:
            signals.append("cleanlab")
        findings.append(Finding(
            check="label_issue",
            severity=Severity.HIGH if res.score[pos] >= high else Severity.MEDIUM,
            message=(f"row {ids[pos]} is labelled '{g}' but looks like '{s}' "
                     f"(p={res.p_given[pos]:.2f} vs {res.p_suggested[pos]:.2f})"),
            rows=[ids[pos]], labels=[g, s],
            evidence={"given_label": g, "suggested_label": s, "p_given": round(float(res.p_given[pos]), 4),
                      "p_suggested": round(float(res.p_suggested[pos]), 4),
                      "p_neighbours_suggested": round(float(res.p_knn[pos]), 4),
                      "score": round(float(res.score[pos]), 4), "signals": signals,
                      "text": _text(ctx, int(pos))},
        ))
    total = len(ranked)
    rate = total / n_lab if n_lab else 0.0
    findings.append(Finding(
        check="label_issue",
        severity=Severity.HIGH if rate > 0.05 else Severity.MEDIUM if total else Severity.INFO,
        message=(f"{total} of {n_lab} labelled rows ({rate:.1%}) look mislabelled "
                 f"(cleanlab alone flags {int(res.cleanlab.sum())})"),
        rows=[ids[p] for p in ranked[:1000]],
        evidence={"flagged": total, "labelled_rows": n_lab, "rate": round(rate, 4),
                  "high_confidence": int((res.score[ranked] >= high).sum()),
                  "cleanlab_flagged": int(res.cleanlab.sum()), "cleanlab_rows": min(n_lab, CLEANLAB_MAX_ROWS),
                  "both_flagged": int((res.flagged & res.cleanlab).sum()),
                  "threshold": res.threshold, "oof_accuracy": round(oof.accuracy(), 4),
                  "listed": min(total, MAX_ISSUE_FINDINGS),
                  "notes": oof.notes},
    ))
    return findings


def _examples(ctx: AuditContext, oof: OOFResult, a: int, b: int, limit: int = 3) -> list[dict[str, Any]]:
    """Rows labelled a that the classifier predicts as b, most confident first."""
    pos = np.flatnonzero((oof.given == a) & (oof.predicted == b))
    pos = pos[np.argsort(-oof.probs[pos, b], kind="stable")][:limit]
    ids = ctx.train.frame["id"]
    return [{"id": _plain(ids.iat[int(p)]), "text": _text(ctx, int(p)), "p_other": round(float(oof.probs[p, b]), 3)}
            for p in pos]


def _duplicate_conflicts(ctx: AuditContext, oof: OOFResult) -> dict[tuple[int, int], int]:
    """Label pairs that share an identical normalised text: {(a, b): number of such texts}."""
    import pandas as pd

    frame = pd.DataFrame({"t": ctx.features.neighbors.codes, "g": oof.given})  # code: distinct normalised text
    frame = frame[frame["g"] >= 0].drop_duplicates()
    multi = frame[frame.duplicated("t", keep=False)]
    out: dict[tuple[int, int], int] = {}
    for _, grp in multi.groupby("t"):
        labs = sorted(set(grp["g"].tolist()))
        for i, a in enumerate(labs):
            for b in labs[i + 1:]:
                out[(a, b)] = out.get((a, b), 0) + 1
    return out


def _label_overlap(ctx: AuditContext) -> list[Finding]:
    """One finding per colliding label pair (top 20 by confusion share)."""
    oof = ctx.features.oof
    min_share = ctx.config.checks.label_overlap_min_share
    k = len(oof.classes)
    m = oof.labelled
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (oof.given[m], oof.predicted[m]), 1)
    support = cm.sum(axis=1)
    pair = cm + cm.T
    np.fill_diagonal(pair, 0)
    share = pair / np.maximum(support[:, None] + support[None, :], 1)
    dups = _duplicate_conflicts(ctx, oof)
    iu = np.triu_indices(k, 1)
    keys = {(int(a), int(b)) for a, b in zip(*iu, strict=True)
            if share[a, b] >= min_share and pair[a, b] >= OVERLAP_MIN_ROWS}
    keys |= set(dups)
    ranked = sorted(keys, key=lambda ab: (-share[ab], -dups.get(ab, 0), ab))[:OVERLAP_TOP]
    findings = []
    for a, b in ranked:
        la, lb = oof.classes[a], oof.classes[b]
        sh = float(share[a, b])
        severity = Severity.HIGH if sh >= OVERLAP_HIGH_SHARE else Severity.MEDIUM
        findings.append(Finding(
            check="label_overlap", severity=severity,
            message=(f"labels '{la}' and '{lb}' collide: {int(cm[a, b])} '{la}' rows predicted '{lb}', "
                     f"{int(cm[b, a])} the other way ({sh:.1%} of their rows)"
                     + (f"; {dups[(a, b)]} identical texts carry both labels" if (a, b) in dups else "")),
            labels=[la, lb],
            rows=[e["id"] for e in _examples(ctx, oof, a, b, 10) + _examples(ctx, oof, b, a, 10)],
            evidence={"label_a": la, "label_b": lb, "rows_a": int(support[a]), "rows_b": int(support[b]),
                      "a_predicted_b": int(cm[a, b]), "b_predicted_a": int(cm[b, a]),
                      "confusion_share": round(sh, 4), "identical_text_conflicts": dups.get((a, b), 0),
                      "examples_a_as_b": _examples(ctx, oof, a, b), "examples_b_as_a": _examples(ctx, oof, b, a)},
        ))
    return findings


class RowIssue(Evidence):
    """One row whose label looks wrong."""

    given_label: str
    suggested_label: str
    p_given: float
    p_suggested: float
    p_neighbours_suggested: float
    score: float
    signals: list[str]
    text: str


class IssueSummary(Evidence):
    flagged: int
    labelled_rows: int
    rate: float
    high_confidence: int
    cleanlab_flagged: int
    cleanlab_rows: int
    both_flagged: int
    threshold: float
    oof_accuracy: float
    listed: int
    notes: list[str]


class ConfusedRow(Record):
    id: RowId
    text: str
    p_other: float


class OverlapEvidence(Evidence):
    label_a: str
    label_b: str
    rows_a: int
    rows_b: int
    a_predicted_b: int
    b_predicted_a: int
    confusion_share: float
    identical_text_conflicts: int
    examples_a_as_b: list[ConfusedRow]
    examples_b_as_a: list[ConfusedRow]


class LabelIssue(Check):
    """One finding per flagged row (top 500 by score) plus one summary finding."""

    name = "label_issue"
    description = "Rows whose given label the cross-validated classifier and their neighbours find unlikely"
    needs = ("labels", "classification", "two_labels")
    recommendation = ("Review the rows whose label the cross-validated classifier disagrees with (start with "
                      "review_sample.csv) and fix the wrong ones.")
    Evidence = RowIssue | IssueSummary
    suspect_priority = 5
    label_in_doubt = True
    agreeing_verdicts = frozenset({"contradicted"})

    def run(self, ctx: AuditContext) -> list[Finding]:
        return _label_issue(ctx)

    def subject(self, f: Finding) -> str | None:
        return "summary" if self.evidence(f, IssueSummary) is not None else None

    def row_scores(self, f: Finding) -> dict[str, float]:
        ev = self.evidence(f, RowIssue)
        if ev is None:
            return super().row_scores(f)
        return {str(r): float(ev.score) for r in f.rows}


class LabelOverlap(Check):
    """One finding per colliding label pair (top 20 by confusion share)."""

    name = "label_overlap"
    description = "Label pairs the classifier keeps confusing (or that share identical texts)"
    needs = ("labels", "classification", "two_labels")
    recommendation = ("Write a tie-break rule for each colliding label pair into the annotation guide (see "
                      "revised_guide.md when the LLM ran), or merge the two labels if no rule separates them.")
    Evidence = OverlapEvidence
    suspect_priority = 3
    label_in_doubt = True
    agreeing_verdicts = frozenset({"contradicted", "ambiguous"})

    def run(self, ctx: AuditContext) -> list[Finding]:
        return _label_overlap(ctx)

    def subject(self, f: Finding) -> str | None:
        ev = self.evidence(f, OverlapEvidence)
        return " | ".join(sorted((ev.label_a, ev.label_b))) if ev is not None else None

    def label_pairs(self, f: Finding) -> list[tuple[str, str]]:
        ev = self.evidence(f, OverlapEvidence)
        return [(ev.label_a, ev.label_b)] if ev is not None else []
