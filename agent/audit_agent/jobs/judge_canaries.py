"""Calibration canaries: known cases mixed into the judge's rows, indistinguishable to the model.

A canary is a real training row the checks are confident about (`confident`: the out-of-fold
classifier's top label is its own label with probability >= `CONFIDENT_P`, and no label-suspect
finding names it):
- `swapped`: shown with another label, picked at random; the right answer is "contradicted" naming
  the row's own label;
- `confirmed`: shown with its own label; the right answer is "supported".
The confident rows of the random sample are confirmed cases already (jobs/judge_calibration.py), so
the loop makes most or all dedicated canaries swapped (`judge_calibration.swapped_share`). Canaries go
through the same prompt and carry the same kind of row id as every other row; their known answers are
used for calibration only, and their verdicts never become findings.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from audit_agent.jobs.judge_calibration import swapped_share
from audit_agent.jobs.judge_plan import Pick

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


def confident(labels: Sequence[str | None], own_p: np.ndarray | None,
              top_labels: Sequence[str | None] | None) -> np.ndarray:
    """Per row: the classifier's top label is the row's own label, with probability >= `CONFIDENT_P`
    (all False without a classifier). Rows a label-suspect finding names are the caller's to leave out."""
    if own_p is None:
        return np.zeros(len(labels), dtype=bool)
    return np.asarray([lab is not None and float(own_p[p]) >= CONFIDENT_P
                       and (top_labels is None or top_labels[p] == lab) for p, lab in enumerate(labels)], dtype=bool)


def choose_canaries(ids: Sequence[str], labels: Sequence[str | None], own_p: np.ndarray | None,
                    top_labels: Sequence[str | None] | None, excluded: Collection[str], n: int,
                    seed: int, on_hand: tuple[int, int] = (0, 0)) -> list[Canary]:
    """`n` canaries from confident rows not in `excluded`, spread over the labels (round robin in a
    seeded order, a random row among each label's more confident half), as many of them swapped to a
    random other label as `swapped_share` says for the (swapped, confirmed) cases already `on_hand`
    (none on hand: half, one more when odd). Fewer (possibly none) when the data has too few confident
    rows or no classifier (`own_p` None)."""
    if n <= 0 or own_p is None:
        return []
    rng = np.random.default_rng(seed + 7919)
    label_set = sorted({lab for lab in labels if lab is not None})
    if len(label_set) < 2:
        return []
    sure = confident(labels, own_p, top_labels)
    by_label: dict[str, list[int]] = {}
    for p, lab in enumerate(labels):
        if lab is not None and sure[p] and ids[p] not in excluded:
            by_label.setdefault(lab, []).append(p)
    pools: dict[str, list[int]] = {}
    for label in label_set:
        pos = sorted(by_label.get(label, []), key=lambda p: (-float(own_p[p]), p))
        if pos:
            pools[label] = [int(p) for p in rng.permutation(pos[:max(1, (len(pos) + 1) // 2)])]
    chosen: list[int] = []
    order = [label_set[int(i)] for i in rng.permutation(len(label_set))]
    while len(chosen) < n and any(pools.values()):
        for label in order:
            if pools.get(label) and len(chosen) < n:
                chosen.append(pools[label].pop())
    n_swapped = swapped_share(len(chosen), *on_hand)
    kinds = np.zeros(len(chosen), dtype=bool)
    kinds[rng.permutation(len(chosen))[:n_swapped]] = True  # True = swapped
    out = []
    for at, swap in zip(chosen, kinds.tolist(), strict=True):
        own = str(labels[at])
        if swap:
            others = [lab for lab in label_set if lab != own]
            out.append(Canary(ids[at], own, others[int(rng.integers(len(others)))], "swapped"))
        else:
            out.append(Canary(ids[at], own, own, "confirmed"))
    return out


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
