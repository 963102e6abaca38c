"""How far to trust a judge: its balanced accuracy on known cases, with an interval, and what that
means for its claims. Pure functions.

Two kinds of known case (jobs/judge_canaries.py):
- `swapped`: a confident row shown with another label; right when the judge says "contradicted"
  naming the row's own label. Only dedicated canaries are of this kind (each costs a call).
- `confirmed`: a confident row shown with its own label; right when the judge says "supported".
  Dedicated confirmed canaries, and the confident training rows the judge reads anyway with their own
  label: rows of the stratified random sample and follow-up rows (no extra call; their verdicts are
  findings as usual). Label suspects are never confident (a label-suspect finding names them).

The accuracy is the **balanced** accuracy, the mean of the two kinds' accuracies, so a judge giving one
constant answer scores 0.5 whatever the mix of kinds (pooling the kinds would let the many free
confirmed rows inflate an always-"supported" judge). Its 95 % interval combines the two kinds' Wilson
intervals by Newcombe's MOVER method for a weighted sum of independent proportions (weights 1/2):
L = theta - sqrt(sum w_i^2 (p_i - l_i)^2), U = theta + sqrt(sum w_i^2 (u_i - p_i)^2).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from audit_agent.jobs.judge_stats import wilson_interval

BASELINE = 0.5
"""The balanced accuracy of a judge that gives one constant answer."""


def mover_sum(parts: Sequence[tuple[int, int]], weights: Sequence[float]) -> tuple[float, float, float]:
    """(estimate, low, high) of sum w_i p_i for independent proportions p_i = k_i / n_i (every n_i > 0,
    weights >= 0): Newcombe's MOVER interval from the parts' Wilson 95 % intervals, clipped to [0, 1]."""
    theta = below = above = 0.0
    for (k, n), w in zip(parts, weights, strict=True):
        p = k / n
        low, high = wilson_interval(p, n)
        theta += w * p
        below += (w * (p - low)) ** 2
        above += (w * (high - p)) ** 2
    return theta, max(0.0, theta - math.sqrt(below)), min(1.0, theta + math.sqrt(above))


def swapped_share(n: int, swapped: int, confirmed: int) -> int:
    """How many of `n` new canaries to swap when `swapped` swapped and `confirmed` confirmed cases
    (canaries or confident sample rows) are already on hand: the split that makes the two kinds as
    even as it can, which minimises the variance of the balanced accuracy for `n` calls (extra swapped
    ones first: only they test whether the judge can say "contradicted" and name the right label)."""
    return max(0, min(n, math.ceil((n + confirmed - swapped) / 2)))


@dataclass
class Calibration:
    """How the judge did on the known cases, and what that means for its claims.

    `accuracy` is the balanced accuracy and `low`/`high` its MOVER interval (module docstring).
    `informative`: None when nothing was measured; False when the accuracy is not above `baseline`
    (0.5, what a constant answer scores) or the lower bound is below `min_low`. Then its claims are
    reported as unverified and drive no follow-ups."""

    canaries: int = 0
    """Dedicated canaries the judge answered (the calls calibration cost)."""
    accuracy: float | None = None
    low: float | None = None
    high: float | None = None
    swapped: int = 0
    swapped_correct: int = 0
    swapped_flagged: int = 0
    """Swapped canaries the judge flagged at all (contradicted or ambiguous), whatever label it named."""
    swapped_low: float | None = None
    swapped_high: float | None = None
    confirmed: int = 0
    """Confirmed cases: dedicated canaries plus confident training rows judged anyway."""
    confirmed_correct: int = 0
    confirmed_canaries: int = 0
    """Of `confirmed`: dedicated canaries (each cost a call)."""
    confirmed_sample: int = 0
    """Of `confirmed`: confident rows of the random sample (no extra call)."""
    confirmed_followup: int = 0
    """Of `confirmed`: confident follow-up rows (no extra call)."""
    confirmed_low: float | None = None
    confirmed_high: float | None = None
    failed: int = 0
    baseline: float = BASELINE
    min_low: float = 0.5
    informative: bool | None = None
    verdict: str = "not measured"
    """What the numbers mean, one sentence for the report."""


def calibrate(swapped: Iterable[tuple[str, bool]], confirmed: Iterable[tuple[str, bool]], *, min_low: float,
              canaries: int = 0, from_sample: int = 0, from_followups: int = 0, failed: int = 0) -> Calibration:
    """`swapped`: (verdict, right) per swapped canary answered; `confirmed`: (verdict, right) per
    confirmed case (`from_sample` of them confident random-sample rows, `from_followups` confident
    follow-up rows, the rest dedicated canaries); `canaries`: dedicated canaries answered; `failed`:
    dedicated canaries without an answer."""
    cal = Calibration(canaries=canaries, failed=failed, min_low=min_low, confirmed_sample=from_sample,
                      confirmed_followup=from_followups)
    for verdict, right in swapped:
        cal.swapped += 1
        cal.swapped_correct += right
        cal.swapped_flagged += verdict in ("contradicted", "ambiguous")
    for _, right in confirmed:
        cal.confirmed += 1
        cal.confirmed_correct += right
    cal.confirmed_canaries = cal.confirmed - from_sample - from_followups
    if not cal.swapped:
        cal.verdict = ("not measured: no canary was judged" if failed else
                       "not measured: no swapped canary to judge (canaries are off, or no confident row was left)"
                       if cal.confirmed else
                       "not measured: no confident rows to use as canaries (needs the out-of-fold classifier)")
        return cal
    counts = (f"{cal.swapped_correct} of {cal.swapped} swapped canaries caught with the right label, "
              f"{cal.confirmed_correct} of {cal.confirmed} confident rows called supported")
    if not cal.confirmed:  # one kind only: a constant answer can score 100 %
        low, high = wilson_interval(cal.swapped_correct / cal.swapped, cal.swapped)
        cal.accuracy, cal.low, cal.high = _rounded(cal.swapped_correct / cal.swapped, low, high)
        cal.baseline = 1.0
        cal.informative = False
        cal.verdict = f"NOT informative: no confirmed case was judged ({counts})"
        return cal
    cal.swapped_low, cal.swapped_high = _rounded(*wilson_interval(cal.swapped_correct / cal.swapped, cal.swapped))
    cal.confirmed_low, cal.confirmed_high = _rounded(*wilson_interval(cal.confirmed_correct / cal.confirmed,
                                                                      cal.confirmed))
    acc, low, high = mover_sum([(cal.swapped_correct, cal.swapped), (cal.confirmed_correct, cal.confirmed)],
                               [0.5, 0.5])
    cal.accuracy, cal.low, cal.high = _rounded(acc, low, high)
    cal.informative = acc > cal.baseline and cal.low >= min_low
    text = f"balanced accuracy {acc:.0%} (95% CI {cal.low:.0%}-{cal.high:.0%}; {counts})"
    if cal.informative:
        cal.verdict = f"informative: {text}"
    elif acc <= cal.baseline:
        cal.verdict = f"NOT informative: {text}, no better than always giving the same answer ({cal.baseline:.0%})"
    else:
        cal.verdict = f"NOT informative: {text}; the lower bound is below {min_low:.0%}"
    return cal


def _rounded(*xs: float) -> tuple[float, ...]:
    return tuple(round(x, 4) for x in xs)
