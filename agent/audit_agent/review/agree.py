"""How well two reviewers agree on the same rows: Cohen's kappa overall and per label (one-vs-rest),
the confusion table, every disagreement, and the verdict the review practice asks for: disagreement on
ordinary rows means the labels need work; disagreement only on rows marked hard or flagged by the
checks means the set is in good shape."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from audit_agent.checks import KINDS
from audit_agent.errors import InputError
from audit_agent.findings import Finding
from audit_agent.review.reviewer_csv import ReviewedRow, ReviewFile

KAPPA_GOOD = 0.8
KAPPA_FAIR = 0.6
MIN_COMPARED = 20
"""Checks whose rows count as flagged (plus every judge finding): rows the checks already call hard to label."""
Verdict = Literal["good shape", "tighten the rules", "labels need work", "too few rows", "undefined"]
DROP = "(drop)"


class Thresholds(BaseModel):
    kappa_good: float = KAPPA_GOOD
    kappa_fair: float = KAPPA_FAIR
    min_compared: int = MIN_COMPARED  # ordinary rows decided by both, fewer: too few to judge


class LabelKappa(BaseModel):
    """One-vs-rest kappa of one label: both reviewers' answers reduced to 'this label or not'."""

    label: str
    kappa: float | None
    n_a: int
    n_b: int
    n_both: int


class Disagreement(BaseModel):
    id: str
    text: str
    label: str
    a: str  # reviewer A's label, or (drop)
    b: str
    note_a: str = ""
    note_b: str = ""
    hard: bool = False  # marked hard by either reviewer
    flagged: bool = False  # named by a label-related finding

    @property
    def ordinary(self) -> bool:
        return not (self.hard or self.flagged)


class Agreement(BaseModel):
    """Everything agreement.md / agreement.json show."""

    file_a: str
    file_b: str
    reviewer_a: str
    reviewer_b: str
    n_rows: int  # rows in both files
    n_skipped: int = 0  # rows in only one file (with common_only)
    n_compared: int  # rows both reviewers decided: everything below is computed on these
    n_undecided: int  # rows at least one reviewer left undecided
    observed_agreement: float | None
    kappa: float | None  # None when undefined (one category only, or no rows)
    kappa_ordinary: float | None  # on the ordinary rows only: what the verdict reads
    per_label: list[LabelKappa]
    confusion_labels: list[str]
    confusion: list[list[int]]  # rows: reviewer A, columns: reviewer B
    disagreements: list[Disagreement]
    n_on_hard: int
    n_on_flagged: int
    n_ordinary_rows: int  # decided by both, not hard, not flagged
    n_ordinary_disagreements: int
    ordinary_disagreement_rate: float | None
    ordinary_share_of_disagreements: float | None
    top_pairs: list[tuple[str, str, int]]
    verdict: Verdict
    verdict_reason: str
    flagged_source: str = ""
    thresholds: Thresholds = Thresholds()


def kappa(a: Sequence[str] | Sequence[bool], b: Sequence[str] | Sequence[bool]) -> float | None:
    """sklearn's cohen_kappa_score, None where it is undefined (NaN: one category only, or no rows)."""
    if not len(a):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(cohen_kappa_score(list(a), list(b)))
    return None if value != value else round(value, 4)


def per_label_kappa(a: Sequence[str], b: Sequence[str]) -> list[LabelKappa]:
    out = []
    for label in sorted(set(a) | set(b)):
        ia, ib = [x == label for x in a], [y == label for y in b]
        out.append(LabelKappa(label=label, kappa=kappa(ia, ib), n_a=sum(ia), n_b=sum(ib),
                              n_both=sum(x and y for x, y in zip(ia, ib, strict=True))))
    return out


def flagged_rows(findings: Iterable[Finding]) -> set[str]:
    """Training rows named by a finding whose kind puts labels in doubt (`FindingKind.label_in_doubt`:
    label_issue, conflicting_labels, label_overlap) or by the judge."""
    out: set[str] = set()
    for f in findings:
        kind = KINDS.get(f.check)
        if f.split == "train" and ((kind is not None and kind.label_in_doubt) or f.source == "judge"):
            out.update(str(r) for r in f.rows)
    return out


def _same_text(x: str | None, y: str | None) -> bool:
    return x is None or y is None or " ".join(x.split()) == " ".join(y.split())


def pair_rows(a: ReviewFile, b: ReviewFile, *, common_only: bool = False
              ) -> tuple[list[tuple[ReviewedRow, ReviewedRow]], int]:
    """Rows of A and B matched by id (A's order). Ids in only one file are an error unless
    `common_only`; the same id with another text or given label is always an error."""
    by_id = {r.id: r for r in b.rows}
    a_ids = {r.id for r in a.rows}
    only_a = [r for r in a.rows if r.id not in by_id]
    only_b = [r for r in b.rows if r.id not in a_ids]
    if (only_a or only_b) and not common_only:
        first, other, where = (only_a[0], b, a) if only_a else (only_b[0], a, b)
        raise InputError(where.path, f"row id '{first.id}' is missing from {other.path} "
                                     f"({len(only_a) + len(only_b)} ids in one file only; both reviewers must "
                                     "review the same rows, or pass --common-only)", row=first.row, column="id")
    pairs = []
    for ra in a.rows:
        rb = by_id.get(ra.id)
        if rb is None:
            continue
        if not _same_text(ra.text, rb.text):
            raise InputError(b.path, f"row '{ra.id}' has another text than in {a.path}", row=rb.row, column="text")
        if ra.label is not None and rb.label is not None and ra.label != rb.label:
            raise InputError(b.path, f"row '{ra.id}' has given label '{rb.label}', '{ra.label}' in {a.path}",
                             row=rb.row, column="label")
        pairs.append((ra, rb))
    return pairs, len(only_a) + len(only_b)


def check_labels(files: Sequence[ReviewFile], known: Sequence[str] | None, known_from: str) -> None:
    """Every label a reviewer assigns must be known: the dataset's labels when given, else the union of
    the files' given labels."""
    allowed = set(known) if known else {r.label for f in files for r in f.rows if r.label}
    for f in files:
        for r in f.rows:
            assigned = r.review_label
            if assigned and assigned not in allowed:
                column = "new_label" if r.decision == "relabel" else "label"
                raise InputError(f.path, f"label '{assigned}' is not a label of {known_from}", row=r.row,
                                 column=column)


def _verdict(n_ordinary: int, k_ordinary: float | None, n_ordinary_dis: int, n_dis: int, low_labels: list[str],
             t: Thresholds) -> tuple[Verdict, str]:
    """From kappa on the ordinary rows (not hard, not flagged): the practice's question is whether the
    reviewers disagree on rows that should be easy."""
    if n_ordinary < t.min_compared:
        return "too few rows", (f"only {n_ordinary} ordinary rows (not hard, not flagged) decided by both "
                                f"reviewers (under {t.min_compared}): review more rows before judging the labels")
    if n_ordinary_dis == 0:
        where = "only on rows marked hard or flagged by the checks" if n_dis else "nowhere"
        return "good shape", (f"the reviewers disagree {where}: keep those rows, tagged hard, and apply the "
                              "decisions")
    if k_ordinary is None:
        return "undefined", "kappa on the ordinary rows is undefined (one label only): review a balanced sample"
    labels = f" (lowest per-label kappa: {', '.join(low_labels)})" if low_labels else ""
    if k_ordinary >= t.kappa_good:
        return "good shape", (f"kappa on ordinary rows {k_ordinary:.2f}: the rare disagreements there are "
                              "noise; keep the hard rows tagged hard and apply the decisions")
    if k_ordinary >= t.kappa_fair:
        return "tighten the rules", (f"kappa on ordinary rows {k_ordinary:.2f}: sharpen the definitions and "
                                     f"tie-break rules of the confused labels{labels}, then relabel")
    return "labels need work", (f"kappa on ordinary rows {k_ordinary:.2f}: the reviewers often disagree on rows "
                                f"that should be easy{labels}; rewrite the label definitions, relabel, and "
                                "review a fresh sample")


def _category(r: ReviewedRow) -> str:
    return r.review_label or DROP


def agreement(a: ReviewFile, b: ReviewFile, *, flagged: set[str] | None = None, common_only: bool = False,
              known_labels: Sequence[str] | None = None, known_from: str = "the files' label column",
              thresholds: Thresholds | None = None) -> Agreement:
    """Compare two reviewers' files on the rows both decided; a drop is one more category, `(drop)`
    (see docs/review.md for the thresholds and the verdict)."""
    t = thresholds or Thresholds()
    check_labels([a, b], known_labels, known_from)
    pairs, skipped = pair_rows(a, b, common_only=common_only)
    flagged = flagged or set()
    decided = [(x, y) for x, y in pairs if x.decision and y.decision]
    ya, yb = [_category(x) for x, _ in decided], [_category(y) for _, y in decided]
    disagreements = [
        Disagreement(id=x.id, text=x.text or y.text or "", label=x.label or "", a=_category(x), b=_category(y),
                     note_a=x.note, note_b=y.note, hard=x.hard or y.hard, flagged=x.id in flagged)
        for x, y in decided if _category(x) != _category(y)]
    ordinary = [(_category(x), _category(y)) for x, y in decided if not (x.hard or y.hard or x.id in flagged)]
    n_ord_dis = sum(d.ordinary for d in disagreements)
    k_ord = kappa([x for x, _ in ordinary], [y for _, y in ordinary])
    labels = sorted(set(ya) | set(yb))
    per_label = per_label_kappa(ya, yb)
    low = [f"{p.label} {p.kappa:.2f}" for p in sorted(per_label, key=lambda p: p.kappa or 0.0)
           if p.kappa is not None and p.kappa < t.kappa_good][:3]
    verdict, reason = _verdict(len(ordinary), k_ord, n_ord_dis, len(disagreements), low, t)
    off = Counter((x, y) for x, y in zip(ya, yb, strict=True) if x != y)
    return Agreement(
        file_a=a.path, file_b=b.path, reviewer_a=_reviewer(a), reviewer_b=_reviewer(b), n_rows=len(pairs),
        n_skipped=skipped, n_compared=len(decided), n_undecided=len(pairs) - len(decided),
        observed_agreement=round(sum(x == y for x, y in zip(ya, yb, strict=True)) / len(ya), 4) if ya else None,
        kappa=kappa(ya, yb), kappa_ordinary=k_ord, per_label=per_label, confusion_labels=labels,
        confusion=_confusion(ya, yb, labels),
        disagreements=disagreements, n_on_hard=sum(d.hard for d in disagreements),
        n_on_flagged=sum(d.flagged for d in disagreements), n_ordinary_rows=len(ordinary),
        n_ordinary_disagreements=n_ord_dis,
        ordinary_disagreement_rate=round(n_ord_dis / len(ordinary), 4) if ordinary else None,
        ordinary_share_of_disagreements=round(n_ord_dis / len(disagreements), 4) if disagreements else None,
        top_pairs=[(x, y, n) for (x, y), n in off.most_common(5)], verdict=verdict, verdict_reason=reason,
        thresholds=t)


def _confusion(a: list[str], b: list[str], labels: list[str]) -> list[list[int]]:
    if not a:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [[int(v) for v in row] for row in confusion_matrix(a, b, labels=labels)]


def _reviewer(f: ReviewFile) -> str:
    names = Counter(r.reviewer for r in f.rows if r.reviewer)
    return names.most_common(1)[0][0] if names else f.path.rsplit("/", 1)[-1]
