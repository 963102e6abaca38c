"""Calibration canaries: known cases mixed into the judge's rows, indistinguishable to the model.

A canary is a real training row the checks are confident about (the out-of-fold classifier's top
label is its own label with probability >= `CONFIDENT_P`, and no label-suspect finding names it):
- `swapped`: shown with another label, picked at random; the right answer is "contradicted" naming
  the row's own label;
- `confirmed`: shown with its own label; the right answer is "supported".
Half of them are swapped (one more when their number is odd), so a judge that always gives the same
answer scores at most the share of the majority kind (0.5). They go through the same prompt and carry
the same kind of row id as every other row; their known answers are used for calibration only, and
their verdicts never become findings.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from audit_agent.jobs.judge_plan import Pick
from audit_agent.jobs.judge_stats import wilson

CONFIDENT_P = 0.5
"""A row is confident when its own label is the classifier's top label with at least this probability."""

CanaryKind = Literal["swapped", "confirmed"]


@dataclass(frozen=True)
class Canary:
    """A known case: `row_id` shown with `shown_label`; `true_label` is the row's own label."""

    row_id: str
    true_label: str
    shown_label: str
    kind: CanaryKind

    def is_right(self, verdict: str, best_label: str) -> bool:
        """Whether a verdict gets this known case right."""
        if self.kind == "swapped":
            return verdict == "contradicted" and best_label == self.true_label
        return verdict == "supported"


def canary_count(budget_calls: int, share: float, minimum: int) -> int:
    """About `share` of the calls, at least `minimum`, never more than a third of the calls."""
    if share <= 0 or budget_calls <= 0:
        return 0
    return min(max(minimum, round(share * budget_calls)), budget_calls // 3)


def choose_canaries(ids: Sequence[str], labels: Sequence[str | None], own_p: np.ndarray | None,
                    top_labels: Sequence[str | None] | None, excluded: Collection[str], n: int,
                    seed: int) -> list[Canary]:
    """`n` canaries from confident rows not in `excluded`, spread over the labels (round robin in a
    seeded order, a random row among each label's more confident half), half of them swapped to a
    random other label. Fewer (possibly none) when the data has too few confident rows or no
    classifier (`own_p` None)."""
    if n <= 0 or own_p is None:
        return []
    rng = np.random.default_rng(seed + 7919)
    label_set = sorted({lab for lab in labels if lab is not None})
    if len(label_set) < 2:
        return []
    confident: dict[str, list[int]] = {}
    for p, lab in enumerate(labels):
        if (lab is not None and own_p[p] >= CONFIDENT_P and ids[p] not in excluded
                and (top_labels is None or top_labels[p] == lab)):
            confident.setdefault(lab, []).append(p)
    pools: dict[str, list[int]] = {}
    for label in label_set:
        pos = sorted(confident.get(label, []), key=lambda p: (-float(own_p[p]), p))
        if pos:
            pools[label] = [int(p) for p in rng.permutation(pos[:max(1, (len(pos) + 1) // 2)])]
    chosen: list[int] = []
    order = [label_set[int(i)] for i in rng.permutation(len(label_set))]
    while len(chosen) < n and any(pools.values()):
        for label in order:
            if pools.get(label) and len(chosen) < n:
                chosen.append(pools[label].pop())
    kinds = np.zeros(len(chosen), dtype=bool)
    kinds[rng.permutation(len(chosen))[: (len(chosen) + 1) // 2]] = True  # True = swapped
    out = []
    for at, swapped in zip(chosen, kinds.tolist(), strict=True):
        own = str(labels[at])
        if swapped:
            others = [lab for lab in label_set if lab != own]
            out.append(Canary(ids[at], own, others[int(rng.integers(len(others)))], "swapped"))
        else:
            out.append(Canary(ids[at], own, own, "confirmed"))
    return out


@dataclass
class Calibration:
    """How the judge did on the canaries, and what that means for its claims.

    `informative`: None when nothing was measured; False when its accuracy is not above `baseline`
    (what a judge giving one constant answer scores) or the Wilson lower bound is below `min_low`.
    Then its claims are reported as unverified and drive no follow-ups."""

    canaries: int = 0
    correct: int = 0
    accuracy: float | None = None
    low: float | None = None
    high: float | None = None
    swapped: int = 0
    swapped_correct: int = 0
    swapped_flagged: int = 0
    """Swapped canaries the judge flagged at all (contradicted or ambiguous), whatever label it named."""
    confirmed: int = 0
    confirmed_correct: int = 0
    failed: int = 0
    baseline: float = 0.5
    min_low: float = 0.4
    informative: bool | None = None
    verdict: str = "not measured"
    """What the numbers mean, one sentence for the report."""


def calibrate(results: Sequence[tuple[Canary, str, str]], *, min_low: float, failed: int = 0) -> Calibration:
    """`results`: (canary, verdict, best label) for every canary the judge answered."""
    cal = Calibration(failed=failed, min_low=min_low)
    if not results:
        cal.verdict = ("not measured: no canary was judged" if failed else
                       "not measured: no confident rows to use as canaries (needs the out-of-fold classifier)")
        return cal
    for canary, verdict, best in results:
        right = canary.is_right(verdict, best)
        cal.correct += right
        if canary.kind == "swapped":
            cal.swapped += 1
            cal.swapped_correct += right
            cal.swapped_flagged += verdict in ("contradicted", "ambiguous")
        else:
            cal.confirmed += 1
            cal.confirmed_correct += right
    cal.canaries = len(results)
    p = wilson(cal.correct, cal.canaries)
    cal.accuracy, cal.low, cal.high = p.rate, p.low, p.high
    cal.baseline = round(max(cal.swapped, cal.confirmed) / cal.canaries, 4)
    assert cal.accuracy is not None and cal.low is not None
    cal.informative = cal.accuracy > cal.baseline and cal.low >= min_low
    acc = f"{cal.correct} of {cal.canaries} canaries right ({cal.accuracy:.0%}, 95% CI {cal.low:.0%}-{cal.high:.0%})"
    if cal.informative:
        cal.verdict = f"informative: {acc}"
    elif cal.accuracy <= cal.baseline:
        cal.verdict = (f"NOT informative: {acc}, no better than always giving the same answer "
                       f"({cal.baseline:.0%})")
    else:
        cal.verdict = f"NOT informative: {acc}; the lower bound is below {min_low:.0%}"
    return cal


def mix_canaries(picks: list[Pick], canaries: list[Canary], seed: int) -> list[Pick]:
    """`picks` with the canaries inserted at random places (same prompt and row-id format as any row)."""
    rng = np.random.default_rng(seed)
    slots = sorted(rng.integers(0, len(picks) + 1, size=len(canaries)).tolist()) if canaries else []
    out: list[Pick] = []
    queue = list(canaries)
    for i, pick in enumerate([*picks, None]):
        while slots and slots[0] == i:
            slots.pop(0)
            c = queue.pop(0)
            out.append(Pick(c.row_id, c.shown_label, "canary", f"calibration canary ({c.kind})"))
        if pick is not None:
            out.append(pick)
    return out
