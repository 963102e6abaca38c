"""Duplicate rows inside the training set: exact duplicates and near duplicates with the same label.

The `drop` lists of `exact_duplicate` and `near_duplicate` findings are exact and complete: the union
over both checks drops all but one row of every same-label duplicate cluster (the first row stays).
Rows of one text with different labels are all kept; `conflicting_labels` (conflicts.py) reports them.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from audit_agent.checks.base import Check
from audit_agent.context import AuditContext
from audit_agent.features.dup_groups import (
    Clusters,
    Groups,
    Rows,
    clip,
    components,
    near_edges,
    nodes_of,
    row_keys,
)
from audit_agent.findings import Evidence, Finding, RowId, RowRef, Severity

MAX_GROUP_FINDINGS = 200  # per duplicate check; the rest is summed up in one summary finding
MAX_EXAMPLES = 20
MAX_ROW_IDS = 1000
LARGE_SHARE = 0.01  # a cluster holding more than this share of the rows is severe


class GroupSummary(Evidence):
    """Totals over all duplicate groups; `drop` holds the ids of groups not shown as their own finding."""

    summary: Literal[True]
    groups: int
    rows_in_groups: int
    drop_count: int
    drop_share: float
    total_rows: int
    groups_shown: int
    drop: list[RowId]


class ExactGroup(Evidence):
    size: int
    share: float
    text: str
    normalized: str
    labels: dict[str, int]
    keep: list[RowId]
    drop: list[RowId]


class NearGroup(Evidence):
    size: int
    variants: int
    share: float
    similarity_min: float
    similarity_max: float
    examples: list[RowRef]
    keep: list[RowId]
    drop: list[RowId]


def _summary(check_name: str, what: str, groups: Groups, drop_count: int, rest: list[Any], n_rows: int,
             shown: int) -> Finding:
    """Totals over all groups; carries the `drop` ids (`rest`) of groups not shown as their own finding."""
    n_groups = len(groups.bounds) - 1
    rows_in = int(groups.bounds[-1])
    share = drop_count / n_rows if n_rows else 0.0
    return Finding(
        check=check_name, severity=Severity.INFO,
        message=(f"{n_groups} {what} cover {rows_in} rows; dropping the extra copies removes "
                 f"{drop_count} rows ({share:.1%} of {n_rows})"),
        rows=[], evidence={"summary": True, "groups": n_groups, "rows_in_groups": rows_in,
                           "drop_count": drop_count, "drop_share": round(share, 6), "total_rows": n_rows,
                           "groups_shown": min(shown, n_groups), "drop": rest},
    )


def _exact_duplicate(ctx: AuditContext) -> list[Finding]:
    """One finding per group of identical normalised texts (largest first), plus a summary."""
    codes, _, label_ids = row_keys(ctx)
    copies = np.bincount(codes)
    group_codes = np.flatnonzero(copies >= 2)
    if len(group_codes) == 0:
        return []
    first_position = ctx.features.neighbors.first_position
    ranked = group_codes[np.lexsort((first_position[group_codes], -copies[group_codes]))]
    rank_of_code = np.full(len(copies), -1, dtype=np.int64)
    rank_of_code[ranked] = np.arange(len(ranked))
    in_group = np.flatnonzero(copies[codes] >= 2)
    groups = Groups.of(rank_of_code[codes[in_group]], in_group, len(ranked))
    # a row is dropped when an earlier row has the same text and label; rows of other labels stay
    dropped = pd.Series(codes * (int(label_ids.max(initial=0)) + 1) + label_ids).duplicated().to_numpy()
    rows_ = Rows.of(ctx)
    ids = rows_.ids
    n = len(ctx.train)
    normalized = ctx.features.normalized
    findings = []
    for rank in range(min(MAX_GROUP_FINDINGS, len(ranked))):
        group = groups[rank]
        counts = rows_.label_counts(group)
        large = len(group) >= 3 and len(group) > LARGE_SHARE * n
        label_note = "" if len(counts) <= 1 else f" with {len(counts)} different labels"
        findings.append(Finding(
            check="exact_duplicate", severity=Severity.HIGH if large else Severity.MEDIUM,
            message=f"{len(group)} rows have the same text{label_note}: \"{str(rows_.texts[group[0]])[:80]}\"",
            rows=ids[group[:MAX_ROW_IDS]].tolist(), labels=sorted(counts),
            evidence={"size": len(group), "share": round(len(group) / n, 6),
                      "text": clip(str(rows_.texts[group[0]])),
                      "normalized": clip(normalized[group[0]]),
                      "labels": counts, "keep": ids[group[~dropped[group]]].tolist(),
                      "drop": ids[group[dropped[group]]].tolist()},
        ))
    rest = groups.items[groups.bounds[min(MAX_GROUP_FINDINGS, len(ranked))]:]
    findings.append(_summary("exact_duplicate", "groups of identical texts", groups, int(dropped.sum()),
                             ids[rest[dropped[rest]]].tolist(), n, MAX_GROUP_FINDINGS))
    return findings


def _near_duplicate(ctx: AuditContext) -> list[Finding]:
    """Clusters of near-identical texts sharing a label; keeps the first row of each cluster."""
    nodes = nodes_of(ctx)
    edges = near_edges(ctx, nodes)
    same = edges[edges["same_label"]]
    if same.empty:
        return []
    comp = components(len(nodes.code), same["a"].to_numpy(), same["b"].to_numpy())
    clusters = Clusters.of(comp, nodes, np.flatnonzero(np.bincount(comp) >= 2))
    by_comp = same.assign(comp=comp[same["a"].to_numpy()]).groupby("comp")["similarity"]
    sim_min, sim_max = by_comp.min().to_dict(), by_comp.max().to_dict()
    rows_ = Rows.of(ctx)
    ids = rows_.ids
    n = len(ctx.train)
    findings = []
    for rank in range(min(MAX_GROUP_FINDINGS, len(clusters.comp))):
        positions, members = clusters.rows[rank], clusters.members[rank]
        c = clusters.comp[rank]
        examples = [{**rows_.row(int(nodes.first[m])), "copies": int(nodes.copies[m])}
                    for m in members[:MAX_EXAMPLES]]
        large = len(positions) >= 3 and len(positions) > LARGE_SHARE * n
        labels = sorted(rows_.label_counts(positions))
        findings.append(Finding(
            check="near_duplicate", severity=Severity.MEDIUM if large else Severity.LOW,
            message=(f"{len(positions)} rows are near-identical ({len(members)} variants of one text, "
                     f"similarity {sim_min[c]:.2f}-{sim_max[c]:.2f}) with the same label"),
            rows=ids[positions[:MAX_ROW_IDS]].tolist(), labels=labels[:MAX_EXAMPLES],
            evidence={"size": len(positions), "variants": len(members), "share": round(len(positions) / n, 6),
                      "similarity_min": round(float(sim_min[c]), 4),
                      "similarity_max": round(float(sim_max[c]), 4),
                      "examples": examples, "keep": [ids[positions[0]]], "drop": ids[positions[1:]].tolist()},
        ))
    drop_count = len(clusters.rows.items) - len(clusters.comp)
    findings.append(_summary("near_duplicate", "clusters of near-identical texts", clusters.rows, drop_count,
                             ids[clusters.rest(MAX_GROUP_FINDINGS)].tolist(), n, MAX_GROUP_FINDINGS))
    return findings


class _Dedup(Check):
    """What both duplicate checks share: their rows leave the deduplicated copy."""

    def drop_rows(self, f: Finding) -> list[str]:
        if f.split != "train" or not isinstance(f.evidence, GroupSummary | ExactGroup | NearGroup):
            return []
        return [str(r) for r in f.evidence.drop]


class ExactDuplicate(_Dedup):
    """One finding per group of identical normalised texts (largest first), plus a summary."""

    name = "exact_duplicate"
    description = "Rows whose normalised text is identical"
    recommendation = ("Drop the duplicates: {dedup_file} is written next to this report, with every extra "
                      "copy removed.")
    Evidence = ExactGroup | GroupSummary
    suspect_priority = 2

    def run(self, ctx: AuditContext) -> list[Finding]:
        return _exact_duplicate(ctx)


class NearDuplicate(_Dedup):
    """Clusters of near-identical texts sharing a label; keeps the first row of each cluster."""

    name = "near_duplicate"
    description = "Near-identical rows (not identical) with the same label"
    recommendation = ("Drop the near-copies (also removed in {dedup_file}) and ask the generator for more "
                      "varied rows instead of paraphrases of the same one.")
    Evidence = NearGroup | GroupSummary
    suspect_priority = 2

    def run(self, ctx: AuditContext) -> list[Finding]:
        return _near_duplicate(ctx)
