"""Follow-ups: where disputed verdicts cluster, read more rows like them.

A cluster is a label pair (given -> the judge's best label) or a template frame with at least
`min_flagged` claims, or a label with that many claims or one verified "contradicted" claim. Each
round the loop re-plans: a cluster is followed when it is new or when its last follow-up turned up a
new claim (`live_clusters`), with `per_cluster` unjudged rows each (`plan_followups`). After them,
before more random rows: unjudged rows the classifier itself doubts (`doubted_rows`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from audit_agent.checks import KINDS
from audit_agent.findings import Finding
from audit_agent.jobs.judge_plan import LabelIndex, Pick

DOUBT_MAX_P = 0.3
"""`doubted_rows` takes a row only when the classifier's top label is another one and it gives the row's
own label less than this (chosen on the bundled example)."""

Ranker = Callable[[Sequence[int], str], list[int]]
DoubtRanker = Callable[[Sequence[int]], list[int]]


@dataclass(frozen=True)
class Claim:
    """A flagged verdict, as the follow-up planner sees it."""

    row_id: str
    given_label: str
    best_label: str
    verified_contradicted: bool = False


@dataclass(frozen=True)
class Cluster:
    """Where claims pile up: a label pair, a label, or a template frame."""

    kind: Literal["label_pair", "label", "template"]
    key: str
    flagged: int
    given_label: str = ""
    best_label: str = ""
    rows: tuple[str, ...] = ()


def find_clusters(claims: Sequence[Claim], template_findings: Sequence[Finding], *,
                  min_flagged: int = 2) -> list[Cluster]:
    """Clusters among the claims (see the module docstring)."""
    pairs: dict[tuple[str, str], int] = defaultdict(int)
    labels: dict[str, int] = defaultdict(int)
    verified: dict[str, int] = defaultdict(int)
    for c in claims:
        labels[c.given_label] += 1
        verified[c.given_label] += c.verified_contradicted
        if c.best_label != c.given_label:
            pairs[(c.given_label, c.best_label)] += 1
    out = [Cluster("label_pair", f"{g} -> {b}", n, g, b) for (g, b), n in sorted(pairs.items()) if n >= min_flagged]
    out += [Cluster("label", f"label {g}", n, g) for g, n in sorted(labels.items())
            if n >= min_flagged or verified[g]]
    flagged_ids = {c.row_id for c in claims}
    for f in template_findings:
        rows = tuple(str(r) for r in f.rows)
        hits = sum(1 for r in rows if r in flagged_ids)
        if hits >= min_flagged:
            named = KINDS[f.check].frames(f) if f.check in KINDS else []
            frame = (named[0] if named else f.id)[:80]
            out.append(Cluster("template", f"template {frame}", hits, rows=rows))
    return out


@dataclass
class ClusterLog:
    """Which clusters were followed, and whether their last follow-up found anything."""

    followed: dict[str, set[str]] = field(default_factory=dict)
    """cluster key -> rows picked for it in its last follow-up."""

    def live(self, clusters: Sequence[Cluster], claimed: set[str]) -> list[Cluster]:
        """New clusters, and followed ones whose last follow-up rows hold a claim."""
        return [c for c in clusters if c.key not in self.followed or self.followed[c.key] & claimed]

    def record(self, picks: Sequence[Pick], keys: Mapping[str, str]) -> None:
        """Remember the rows picked per cluster (`keys`: row id -> cluster key)."""
        for key in set(keys.values()):
            self.followed[key] = set()
        for p in picks:
            if p.row_id in keys:
                self.followed[keys[p.row_id]].add(p.row_id)


def plan_followups(clusters: Sequence[Cluster], index: LabelIndex, taken: set[str], per_cluster: int, *,
                   rank_by_label: Ranker | None = None, rank_by_doubt: DoubtRanker | None = None,
                   limit: int | None = None) -> tuple[list[Pick], dict[str, str]]:
    """Up to `per_cluster` unjudged rows per cluster: for a label pair, rows of the given label the
    classifier finds most like the other label; for a label, its rows the classifier doubts most; for
    a template frame, random rows of that frame. Without a classifier, random rows. Over `limit`, the
    rows whose own label the classifier doubts most are kept. Returns the picks and row id -> cluster
    key."""
    picks: list[Pick] = []
    keys: dict[str, str] = {}
    taken = set(taken)
    for c in clusters:
        rows, why = _rows_for(c, index, taken, per_cluster, rank_by_label, rank_by_doubt)
        for rid in rows:
            taken.add(rid)
            keys[rid] = c.key
            picks.append(Pick(rid, index.label_of(rid), "followup", why))
    if limit is not None and len(picks) > limit:  # keep the rows the classifier doubts most, across clusters
        if rank_by_doubt is not None:
            order = rank_by_doubt([index.id_pos[p.row_id] for p in picks])
            at = {index.ids[pos]: rank for rank, pos in enumerate(order)}
            picks = sorted(picks, key=lambda p: at[p.row_id])
        picks = picks[:limit]
        kept = {p.row_id for p in picks}
        keys = {rid: key for rid, key in keys.items() if rid in kept}
    return picks, keys


def _rows_for(c: Cluster, index: LabelIndex, taken: set[str], n: int, rank_by_label: Ranker | None,
              rank_by_doubt: DoubtRanker | None) -> tuple[list[str], str]:
    if c.kind == "template":
        candidates = [r for r in c.rows if r in index.id_pos and r not in taken and index.labels[index.id_pos[r]]]
        order = index.rng.permutation(len(candidates))[:n]
        return [candidates[int(i)] for i in order], f"follow-up {c.key}: rows of the same frame"
    pool = [int(p) for p in index.positions.get(c.given_label, [])]
    if c.kind == "label_pair" and rank_by_label is not None:
        ranked = rank_by_label(pool, c.best_label)
        why = f"follow-up {c.key}: rows of '{c.given_label}' most like '{c.best_label}'"
    elif c.kind == "label" and rank_by_doubt is not None:
        ranked = rank_by_doubt(pool)
        why = f"follow-up {c.key}: rows of '{c.given_label}' the classifier doubts most"
    else:
        return index.random_rows(c.given_label, n, taken), f"follow-up {c.key}: random rows of '{c.given_label}'"
    return [index.ids[p] for p in ranked if index.ids[p] not in taken][:n], why


def doubted_rows(index: LabelIndex, taken: set[str], own_p: np.ndarray | None, tops: Sequence[str | None] | None,
                 n: int) -> list[Pick]:
    """Up to `n` unjudged rows whose own label the classifier doubts: its top label is another one and
    it gives their own label less than `DOUBT_MAX_P`, least probable first. Checks may not have named
    them (label_issue needs the neighbours to agree too), yet a "contradicted" claim on them can be
    backed: worth a read before more random rows."""
    if n <= 0 or own_p is None or tops is None:
        return []
    rows = [pos for pos, lab in enumerate(index.labels) if lab is not None and tops[pos] != lab
            and own_p[pos] < DOUBT_MAX_P and index.ids[pos] not in taken]
    rows.sort(key=lambda pos: (float(own_p[pos]), pos))
    return [Pick(index.ids[pos], index.label_of(index.ids[pos]), "followup",
                 f"the classifier doubts its label (p = {float(own_p[pos]):.2f}, top label '{tops[pos]}')")
            for pos in rows[:n]]
