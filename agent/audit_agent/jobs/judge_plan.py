"""Which rows the judge reads, driven by the budget (`plan_budget`, a pure function):

1. every label suspect the checks named (rows of `label_in_doubt` kinds: label_issue rows, both sides
   of conflict groups, label_overlap examples), best score first;
2. a stratified random sample (equal rows per label, about `sample_share` of the calls, at least
   `floor_per_label` rows per label while that fits in half of them) that estimates the label error
   rate per label; a suspect that the
   random draw also picks is judged once and counts in both;
3. what is left goes to follow-ups where disputed verdicts cluster (jobs/judge_followup.py), then
   to more random rows (`BudgetPlan.extend_sample`), until the budget is spent or no row is left.

Calibration canaries (jobs/judge_canaries.py) are reserved first: `canaries` of the `budget` calls.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from audit_agent.checks import KINDS
from audit_agent.findings import Finding

PickKind = Literal["suspect", "sample", "followup", "canary"]


@dataclass(frozen=True)
class Pick:
    """One row chosen for the judge, and why. `label` is the label the judge is shown (the row's own,
    except for a swapped canary); `in_sample`: the row belongs to the stratified random sample."""

    row_id: str
    label: str
    kind: PickKind
    reason: str
    checks: tuple[str, ...] = ()
    score: float = 0.0
    in_sample: bool = False


@dataclass
class Suspect:
    """A row the checks named as a label suspect: its best score (0-1, `FindingKind.row_scores`), the
    highest `suspect_priority` of the kinds naming it, and those kinds."""

    score: float
    priority: int = 0
    checks: list[str] = field(default_factory=list)


def suspects_from_findings(findings: Iterable[Finding], known_ids: Mapping[str, int]) -> dict[str, Suspect]:
    """Training rows named by findings of kinds that put labels in doubt (`FindingKind.label_in_doubt`),
    scored by the finding's per-row score (a check's totals finding scores its rows 0)."""
    out: dict[str, Suspect] = {}
    for f in findings:
        kind = KINDS.get(f.check)
        if kind is None or not kind.label_in_doubt or f.split != "train" or f.source != "check":
            continue
        priority = kind.suspect_priority or 0
        scores = {str(r): 0.0 for r in f.rows} if f.evidence.summary else kind.row_scores(f)
        for key, score in scores.items():
            if key not in known_ids:
                continue
            s = out.setdefault(key, Suspect(score, priority))
            s.score, s.priority = max(s.score, score), max(s.priority, priority)
            if f.check not in s.checks:
                s.checks.append(f.check)
    return out


def rank_suspects(suspects: Mapping[str, Suspect]) -> list[str]:
    """Row ids, best score first, then higher priority, then id."""
    return sorted(suspects, key=lambda rid: (-suspects[rid].score, -suspects[rid].priority, rid))


class LabelIndex:
    """Row ids grouped by label, with random draws that skip rows already taken."""

    def __init__(self, ids: Sequence[str], labels: Sequence[str | None], seed: int) -> None:
        """`ids`/`labels` aligned with the training frame (positions are frame positions);
        rows without a label are never drawn."""
        self.ids = list(ids)
        self.labels = list(labels)
        self.id_pos: dict[str, int] = {rid: pos for pos, rid in enumerate(self.ids)}
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        groups: dict[str, list[int]] = defaultdict(list)
        for pos, lab in enumerate(self.labels):
            if lab is not None:
                groups[lab].append(pos)
        self.positions: dict[str, np.ndarray] = {lab: np.asarray(p) for lab, p in groups.items()}

    def label_of(self, rid: str) -> str:
        return str(self.labels[self.id_pos[rid]])

    @property
    def label_set(self) -> list[str]:
        return sorted(self.positions)

    def random_rows(self, label: str, n: int, taken: set[str]) -> list[str]:
        """Up to `n` random row ids of `label` not in `taken`."""
        if n <= 0:
            return []
        pool = self.positions.get(label, np.asarray([], dtype=int))
        out: list[str] = []
        for pos in self.rng.permutation(pool):
            rid = self.ids[int(pos)]
            if rid not in taken:
                out.append(rid)
                if len(out) == n:
                    break
        return out


def water_fill(sizes: Mapping[str, int], target: int) -> dict[str, int]:
    """Equal rows per label summing to min(target, all rows): small labels are taken whole and the rest
    is shared by the others; leftover single rows go to the largest labels."""
    target = min(target, sum(sizes.values()))
    alloc = dict.fromkeys(sizes, 0)
    while sum(alloc.values()) < target:
        open_labels = [lab for lab in sizes if alloc[lab] < sizes[lab]]
        room = target - sum(alloc.values())
        if room < len(open_labels):
            for lab in sorted(open_labels, key=lambda x: (-(sizes[x] - alloc[x]), x))[:room]:
                alloc[lab] += 1
            break
        step = max(1, min(room // len(open_labels), min(sizes[lab] - alloc[lab] for lab in open_labels)))
        for lab in open_labels:
            alloc[lab] += step
    return alloc


@dataclass
class BudgetPlan:
    """What the budget buys, in calls of one judge (a second judge doubles each call)."""

    budget: int
    canaries: int
    suspects_named: int
    suspects: list[Pick]
    sample_order: dict[str, list[str]]
    sample_size: dict[str, int]
    followup_budget: int
    sample_target: int = 0

    def sample_rows(self) -> set[str]:
        """The rows of the stratified random sample so far (each label's random order, cut at its size)."""
        return {rid for lab, order in self.sample_order.items() for rid in order[: self.sample_size[lab]]}

    def first_round(self) -> list[Pick]:
        """Suspects (best first), then the sample rows not already suspects; suspects the random draw
        picked carry `in_sample`."""
        sample = self.sample_rows()
        suspects = [Pick(p.row_id, p.label, p.kind, p.reason, p.checks, p.score, p.row_id in sample)
                    for p in self.suspects]
        named = {p.row_id for p in suspects}
        rest = [Pick(rid, lab, "sample", "stratified random sample", in_sample=True)
                for lab, order in sorted(self.sample_order.items()) for rid in order[: self.sample_size[lab]]
                if rid not in named]
        return suspects + _spread(rest)

    def extend_sample(self, taken: set[str], n: int) -> tuple[list[Pick], list[str]]:
        """Grow the random sample one row at a time, always in the label with the fewest sampled rows
        (then by name), until `n` rows not yet in `taken` are picked or every label is exhausted.
        Returns the new picks and the rows that joined the sample at no cost (already judged with their
        own label)."""
        picks: list[Pick] = []
        free: list[str] = []
        while len(picks) < n:
            open_labels = [lab for lab, order in self.sample_order.items() if self.sample_size[lab] < len(order)]
            if not open_labels:
                break
            lab = min(open_labels, key=lambda x: (self.sample_size[x], x))
            rid = self.sample_order[lab][self.sample_size[lab]]
            self.sample_size[lab] += 1
            if rid in taken:
                free.append(rid)
            else:
                picks.append(Pick(rid, lab, "sample", "stratified random sample (extended)", in_sample=True))
        return picks, free


def _spread(picks: list[Pick]) -> list[Pick]:
    """Interleave labels (round robin), so a cut keeps every label represented."""
    by_label: dict[str, list[Pick]] = defaultdict(list)
    for p in picks:
        by_label[p.label].append(p)
    out: list[Pick] = []
    queues = [by_label[lab] for lab in sorted(by_label)]
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def plan_budget(suspects: Mapping[str, Suspect], index: LabelIndex, budget: int, canaries: int, seed: int, *,
                floor_per_label: int = 3, sample_share: float = 0.25, reserve: int = 0,
                reserve_below: float = 1.0) -> BudgetPlan:
    """Split `budget` calls: `canaries` first, then the sample target (`sample_share` of the rest, at
    least `floor_per_label` rows per label as long as that is at most half the rest) and `reserve`
    calls for second looks (jobs/judge_second_look.py) are set aside, suspects take what remains (best
    first; those the random draw picks cost nothing extra; the reserve is kept only from suspects
    scoring below `reserve_below`), and the rest, the reserve included, is for second looks and
    follow-ups."""
    labels = index.label_set
    rest = max(0, budget - canaries)
    sizes = {lab: len(index.positions[lab]) for lab in labels}
    rng = np.random.default_rng(seed + 1)
    orders = {lab: [index.ids[int(p)] for p in rng.permutation(index.positions[lab])] for lab in labels}
    target = min(rest, max(min(floor_per_label * len(labels), rest // 2), round(sample_share * rest)))
    size = water_fill(sizes, target)
    sample = {rid for lab in labels for rid in orders[lab][: size[lab]]}
    ranked = rank_suspects({rid: s for rid, s in suspects.items() if rid in index.id_pos
                            and index.labels[index.id_pos[rid]] is not None})
    reserve = max(0, min(reserve, rest - len(sample)))
    room = rest - len(sample)
    chosen: list[str] = []
    for rid in ranked:
        if rid in sample:
            chosen.append(rid)
        elif room > (reserve if suspects[rid].score < reserve_below else 0):
            chosen.append(rid)
            room -= 1
    picks = [Pick(rid, index.label_of(rid), "suspect",
                  f"named by {', '.join(suspects[rid].checks)} (score {suspects[rid].score:.2f})",
                  tuple(suspects[rid].checks), suspects[rid].score) for rid in chosen]
    return BudgetPlan(budget=budget, canaries=canaries, suspects_named=len(ranked), suspects=picks,
                      sample_order=orders, sample_size=size, followup_budget=room, sample_target=len(sample))


def suspect_rows(findings: Sequence[Finding]) -> set[str]:
    """Training rows named by any finding whose kind makes label suspects (duplicates included): not
    canary material."""
    out: set[str] = set()
    for f in findings:
        kind = KINDS.get(f.check)
        if kind is not None and (kind.is_label_suspect or kind.label_in_doubt) and f.split == "train":
            out.update(str(r) for r in f.rows)
    return out
