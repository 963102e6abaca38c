"""The judge's numbers: Wilson intervals, the per-label label-error rate estimated on the stratified
random sample, and the agreement (Cohen's kappa) of two judges on the same rows. Pure functions."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from scipy.stats import binomtest

from audit_agent.review.agree import kappa, per_label_kappa

CONFIDENCE = 0.95
_Z = 1.959963984540054  # two-sided 95 % normal quantile


@dataclass
class Proportion:
    """k of n, with a Wilson interval (None bounds when n = 0)."""

    k: int
    n: int
    rate: float | None
    low: float | None
    high: float | None


def wilson(k: int, n: int, confidence: float = CONFIDENCE) -> Proportion:
    """k successes in n trials with scipy's Wilson score interval."""
    if n <= 0:
        return Proportion(k, n, None, None, None)
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Proportion(k, n, round(k / n, 4), round(float(ci.low), 4), round(float(ci.high), 4))


@dataclass
class LabelErrorRate:
    """The label-error estimate of one label: `errors` of `sampled` random rows (Wilson interval),
    `rows` in the label."""

    label: str
    rows: int
    sampled: int
    errors: int
    rate: float | None
    low: float | None
    high: float | None
    flagged: int = 0
    """Random rows the judge flagged at all (contradicted or ambiguous, verified or not)."""


def wilson_interval(p: float, n: float) -> tuple[float, float]:
    """The Wilson score interval (95 %) of a proportion `p` observed on an effective sample of `n`
    (not necessarily whole: the stratified estimate's effective size)."""
    z2 = _Z * _Z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = _Z * math.sqrt(max(0.0, p * (1 - p) / n + z2 / (4 * n * n))) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class ErrorEstimate:
    """Label error rate per label and overall. Overall: label rates weighted by label size, with a
    Wilson interval on the effective sample size (Kish: sum of weights squared over the sum of
    squared weights per sampled row), which stays sensible when no error was seen."""

    per_label: list[LabelErrorRate] = field(default_factory=list)
    sampled: int = 0
    errors: int = 0
    rate: float | None = None
    low: float | None = None
    high: float | None = None
    definition: str = ""


def error_estimate(sample: Mapping[str, Sequence[bool]], rows_per_label: Mapping[str, int],
                   flagged: Mapping[str, int] | None = None, definition: str = "") -> ErrorEstimate:
    """`sample[label]`: one bool per randomly sampled row of that label (True = label wrong)."""
    flagged = flagged or {}
    out = ErrorEstimate(definition=definition)
    total_rows = sum(rows_per_label.get(lab, 0) for lab, s in sample.items() if s)
    mean = spread = 0.0
    for label in sorted(sample):
        hits = list(sample[label])
        n, k = len(hits), sum(bool(h) for h in hits)
        p = wilson(k, n)
        size = rows_per_label.get(label, n)
        out.per_label.append(LabelErrorRate(label, size, n, k, p.rate, p.low, p.high, flagged.get(label, 0)))
        out.sampled += n
        out.errors += k
        if n and total_rows:
            weight = size / total_rows
            mean += weight * k / n
            spread += weight ** 2 / n
    if out.sampled and total_rows and spread:
        low, high = wilson_interval(mean, 1.0 / spread)
        out.rate, out.low, out.high = round(mean, 4), round(low, 4), round(high, 4)
    return out


@dataclass
class LabelAgreement:
    label: str
    kappa: float | None
    first: int
    second: int


@dataclass
class Disagreement:
    """One row the two judges read differently."""

    row_id: str
    label: str
    first_verdict: str
    first_best_label: str
    second_verdict: str
    second_best_label: str


@dataclass
class JudgeAgreement:
    """Cohen's kappa of the two judges' answers (overall and per label, one-vs-rest) on the training rows
    both judged (canaries left out); an answer is the label the judge gives the row (the given label when it says supported, its
    best label when it says contradicted) or "ambiguous"."""

    second_judge: str
    rows: int = 0
    agreed: int = 0
    kappa: float | None = None
    per_label: list[LabelAgreement] = field(default_factory=list)
    disagreements: list[Disagreement] = field(default_factory=list)
    disagreements_total: int = 0


def judge_answer(verdict: str, best_label: str, given_label: str) -> str:
    """The label a judge gives a row: the given one (supported), its best label (contradicted), or
    "ambiguous"."""
    if verdict == "ambiguous":
        return "ambiguous"
    return given_label if verdict == "supported" else best_label


def agreement(first: Sequence[str], second: Sequence[str], label_set: Sequence[str], *, second_judge: str,
              disagreements: Sequence[Disagreement] = (), max_listed: int = 200) -> JudgeAgreement:
    """Kappa over paired answers (`judge_answer` of each judge, same row order)."""
    out = JudgeAgreement(second_judge=second_judge, rows=len(first))
    out.agreed = sum(a == b for a, b in zip(first, second, strict=True))
    out.kappa = kappa(list(first), list(second))
    present = set(first) | set(second)
    out.per_label = [LabelAgreement(p.label, p.kappa, p.n_a, p.n_b) for p in per_label_kappa(first, second)
                     if p.label in present and p.label in set(label_set) | {"ambiguous"}]
    out.disagreements = list(disagreements)[:max_listed]
    out.disagreements_total = len(disagreements)
    return out
