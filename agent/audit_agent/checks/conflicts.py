"""Identical or near-identical training rows whose labels disagree, side by side."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from audit_agent.checks.base import Check
from audit_agent.context import AuditContext
from audit_agent.features.dup_groups import Clusters, Nodes, Rows, components, near_edges, nodes_of
from audit_agent.findings import Evidence, Finding, Record, RowRef, Severity

MAX_CONFLICT_FINDINGS = 1000  # conflicts are fixed row by row, so more of them are listed
MAX_EXAMPLES = 20
MAX_ROW_IDS = 1000


class ConflictPair(Record):
    a: RowRef
    b: RowRef
    similarity: float


class ConflictGroup(Evidence):
    size: int
    labels: dict[str, int]
    rows: list[RowRef]
    similarity: float
    similarity_min: float
    label_pairs: list[tuple[str, str]]
    pairs: list[ConflictPair]
    conflicting_pairs: int


class ConflictSummary(Evidence):
    summary: Literal[True]
    groups: int
    rows_in_groups: int
    groups_shown: int
    conflicting_pairs: int
    total_rows: int


def _exact_conflicts(nodes: Nodes) -> pd.DataFrame:
    """Node pairs (a < b) with the same text and different labels, similarity 1.0."""
    shared = np.flatnonzero(np.bincount(nodes.code)[nodes.code] >= 2)
    table = pd.DataFrame({"node": shared, "code": nodes.code[shared]})
    exact = table.merge(table, on="code", suffixes=("_a", "_b"))
    exact = exact[exact["node_a"] < exact["node_b"]]
    return pd.DataFrame({"a": exact["node_a"].to_numpy(), "b": exact["node_b"].to_numpy(), "similarity": 1.0})


def _conflicting_labels(ctx: AuditContext) -> list[Finding]:
    """One finding per cluster of (near-)identical texts that carries more than one label."""
    nodes = nodes_of(ctx)
    edges = near_edges(ctx, nodes)
    conflicts = pd.concat([_exact_conflicts(nodes), edges.loc[~edges["same_label"], ["a", "b", "similarity"]]],
                          ignore_index=True)
    if conflicts.empty:
        return []
    all_a = np.concatenate([edges["a"].to_numpy(), conflicts["a"].to_numpy()])
    all_b = np.concatenate([edges["b"].to_numpy(), conflicts["b"].to_numpy()])
    comp = components(len(nodes.code), all_a, all_b)
    conflicts["comp"] = comp[conflicts["a"].to_numpy()]
    clusters = Clusters.of(comp, nodes, np.unique(conflicts["comp"].to_numpy()))
    rank_of = pd.Series(np.arange(len(clusters.comp)), index=clusters.comp)
    conflicts["rank"] = rank_of.reindex(conflicts["comp"].to_numpy()).to_numpy()
    conflicts = conflicts.sort_values(["rank", "similarity", "a", "b"], ascending=[True, False, True, True],
                                      ignore_index=True)
    pair_bounds = np.searchsorted(conflicts["rank"].to_numpy(), np.arange(len(clusters.comp) + 1))
    pair_a, pair_b = conflicts["a"].to_numpy(), conflicts["b"].to_numpy()
    pair_sim = conflicts["similarity"].to_numpy()
    rows_ = Rows.of(ctx)
    ids = rows_.ids
    findings = []
    for rank in range(min(MAX_CONFLICT_FINDINGS, len(clusters.comp))):
        positions, members = clusters.rows[rank], clusters.members[rank]
        lo, hi = pair_bounds[rank], pair_bounds[rank + 1]
        a, b, sims = pair_a[lo:hi], pair_b[lo:hi], pair_sim[lo:hi]
        counts = rows_.label_counts(positions)
        shown_pairs = [{"a": rows_.row(int(nodes.first[x])), "b": rows_.row(int(nodes.first[y])),
                        "similarity": round(float(s), 4)}
                       for x, y, s in zip(a[:MAX_EXAMPLES], b[:MAX_EXAMPLES], sims[:MAX_EXAMPLES], strict=True)]
        label_pairs = sorted({tuple(sorted((str(nodes.label[x]), str(nodes.label[y]))))
                              for x, y in zip(a.tolist(), b.tolist(), strict=True)})
        top: dict[str, Any] = shown_pairs[0]
        findings.append(Finding(
            check="conflicting_labels", severity=Severity.HIGH,
            message=(f"{len(positions)} near-identical rows carry {len(counts)} different labels, e.g. "
                     f"\"{str(top['a']['text'])[:60]}\" [{top['a']['label']}] vs "
                     f"\"{str(top['b']['text'])[:60]}\" [{top['b']['label']}]"),
            rows=ids[positions[:MAX_ROW_IDS]].tolist(), labels=sorted(counts)[:MAX_EXAMPLES],
            evidence={"size": len(positions), "labels": counts,
                      "rows": [{**rows_.row(int(nodes.first[m])), "copies": int(nodes.copies[m])}
                               for m in members[:MAX_EXAMPLES]],
                      "similarity": round(float(sims.max()), 4),
                      "similarity_min": round(float(sims.min()), 4),
                      "label_pairs": [list(p) for p in label_pairs[:MAX_EXAMPLES]],
                      "pairs": shown_pairs, "conflicting_pairs": int(hi - lo)},
        ))
    if len(clusters.comp) > 1:
        rows_in = int(clusters.rows.bounds[-1])
        findings.append(Finding(
            check="conflicting_labels", severity=Severity.INFO,
            message=(f"{len(clusters.comp)} clusters of near-identical texts with different labels cover "
                     f"{rows_in} rows"),
            evidence={"summary": True, "groups": len(clusters.comp), "rows_in_groups": rows_in,
                      "groups_shown": min(len(clusters.comp), MAX_CONFLICT_FINDINGS),
                      "conflicting_pairs": len(conflicts), "total_rows": len(ctx.train)},
        ))
    return findings


class ConflictingLabels(Check):
    """One finding per cluster of (near-)identical texts that carries more than one label."""

    name = "conflicting_labels"
    description = "Identical or near-identical rows with different labels"
    needs = ("labels", "classification", "two_labels")
    recommendation = ("Decide one label for each group of (near-)identical rows with different labels, then "
                      "write the tie-break rule into the annotation guide.")
    Evidence = ConflictGroup | ConflictSummary
    suspect_priority = 4
    label_in_doubt = True
    agreeing_verdicts = frozenset({"contradicted", "ambiguous"})

    def run(self, ctx: AuditContext) -> list[Finding]:
        return _conflicting_labels(ctx)

    def mind_reading_rows(self, f: Finding) -> list[str]:
        return [str(r) for r in f.rows] if f.split == "train" else []

    def label_pairs(self, f: Finding) -> list[tuple[str, str]]:
        ev = self.evidence(f, ConflictGroup)
        return [(a, b) for a, b in ev.label_pairs] if ev is not None else []
