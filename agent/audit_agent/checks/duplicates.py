"""Duplicate rows inside the training set: exact duplicates, near duplicates with the same label,
and (near-)identical rows whose labels disagree.

`evidence["drop"]` of `exact_duplicate` and `near_duplicate` findings is exact and complete: the
union over both checks drops all but one row of every same-label duplicate cluster (the first row
stays). Rows of one text with different labels are all kept; `conflicting_labels` reports them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from audit_agent.checks.registry import check
from audit_agent.dataset import AuditContext
from audit_agent.features.text import normalize
from audit_agent.findings import Finding, Severity

MAX_GROUP_FINDINGS = 200  # per duplicate check; the rest is summed up in one summary finding
MAX_CONFLICT_FINDINGS = 1000  # conflicts are fixed row by row, so more of them are listed
MAX_EXAMPLES = 20
MAX_ROW_IDS = 1000
MAX_TEXT_CHARS = 300
LARGE_SHARE = 0.01  # a cluster holding more than this share of the rows is severe


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + "…"


@dataclass
class _Nodes:
    """Rows grouped by (distinct normalised text, label): `node_of[pos]`, and per node its code,
    label and positions (ascending)."""

    node_of: np.ndarray
    code: np.ndarray
    label: np.ndarray
    positions: list[np.ndarray]


def _label_keys(ctx: AuditContext) -> np.ndarray:
    """What "same label" compares: the class, the normalised target text for generation data,
    or one shared value for unlabelled data."""
    ds = ctx.train
    if not ds.has_labels:
        return np.full(len(ds), "", dtype=object)
    labels = ds.frame["label"].fillna("").astype(str)
    if ds.kind == "generation":
        return np.array([normalize(t) for t in labels], dtype=object)
    return labels.to_numpy(dtype=object)


def _nodes(ctx: AuditContext) -> _Nodes:
    codes = ctx.features.neighbors.codes
    frame = pd.DataFrame({"code": codes, "label": _label_keys(ctx)})
    node_of, _ = pd.factorize(pd.MultiIndex.from_frame(frame), sort=False)
    order = np.argsort(node_of, kind="stable")
    sizes = np.bincount(node_of)
    bounds = np.r_[0, np.cumsum(sizes)]
    positions = [order[bounds[k]:bounds[k + 1]] for k in range(len(sizes))]
    firsts = np.array([p[0] for p in positions], dtype=np.int64)
    return _Nodes(node_of, codes[firsts], frame["label"].to_numpy()[firsts], positions)


def _near_edges(ctx: AuditContext, nodes: _Nodes) -> pd.DataFrame:
    """Node pairs (a, b, similarity, same_label) joined by a near-duplicate pair of their texts."""
    index = ctx.features.neighbors
    pairs = pd.DataFrame({"u": index.unique_pairs[0], "v": index.unique_pairs[1],
                          "similarity": index.unique_similarity})
    table = pd.DataFrame({"node": np.arange(len(nodes.code)), "code": nodes.code, "label": nodes.label})
    left = pairs.merge(table.rename(columns={"node": "a", "code": "u", "label": "label_a"}), on="u")
    both = left.merge(table.rename(columns={"node": "b", "code": "v", "label": "label_b"}), on="v")
    both["same_label"] = both["label_a"] == both["label_b"]
    return both[["a", "b", "similarity", "same_label"]]


def _components(n: int, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Component of every node, and the nodes (ascending) of every component."""
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    comp = connected_components(graph, directed=False)[1]
    order = np.argsort(comp, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(comp))]
    return comp, [order[bounds[c]:bounds[c + 1]] for c in range(len(bounds) - 1)]


@dataclass
class _Rows:
    """The training frame's columns as plain arrays (fast element access)."""

    ids: np.ndarray
    texts: np.ndarray
    labels: np.ndarray | None

    @classmethod
    def of(cls, ctx: AuditContext) -> _Rows:
        frame = ctx.train.frame
        labels = frame["label"].to_numpy(dtype=object) if ctx.train.has_labels else None
        return cls(frame["id"].to_numpy(dtype=object), frame["text"].to_numpy(dtype=object), labels)

    def label(self, pos: int) -> str | None:
        value = None if self.labels is None else self.labels[pos]
        return None if value is None or value != value else _clip(str(value))

    def row(self, pos: int) -> dict[str, Any]:
        """{id, text, label} of the row at position `pos`."""
        return {"id": self.ids[pos], "text": _clip(str(self.texts[pos])), "label": self.label(pos)}

    def label_counts(self, positions: np.ndarray) -> dict[str, int]:
        if self.labels is None:
            return {}
        counts = Counter(self.label(int(p)) or "" for p in positions)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _summary(check_name: str, what: str, groups: list[np.ndarray], drops: list[list[Any]], n_rows: int,
             shown: int) -> Finding:
    """Totals over all groups; carries the `drop` ids of groups not shown as their own finding."""
    rows_in = int(sum(len(g) for g in groups))
    drop_all = sum(len(d) for d in drops)
    rest = [i for d in drops[shown:] for i in d]
    share = drop_all / n_rows if n_rows else 0.0
    return Finding(
        check=check_name, severity=Severity.INFO,
        message=(f"{len(groups)} {what} cover {rows_in} rows; dropping the extra copies removes "
                 f"{drop_all} rows ({share:.1%} of {n_rows})"),
        rows=[], evidence={"summary": True, "groups": len(groups), "rows_in_groups": rows_in,
                           "drop_count": drop_all, "drop_share": round(share, 6), "total_rows": n_rows,
                           "groups_shown": min(shown, len(groups)), "drop": rest},
    )


@check("exact_duplicate", description="Rows whose normalised text is identical")
def exact_duplicate(ctx: AuditContext) -> list[Finding]:
    """One finding per group of identical normalised texts (largest first), plus a summary."""
    ds = ctx.train
    groups = [np.asarray(g) for g in ctx.features.neighbors.exact_groups()]
    if not groups:
        return []
    groups.sort(key=lambda g: (-len(g), g[0]))
    rows_ = _Rows.of(ctx)
    ids = rows_.ids
    label_keys = _label_keys(ctx)
    n = len(ds)
    findings, drops = [], []
    for rank, group in enumerate(groups):
        first_of_label = ~pd.Series(label_keys[group]).duplicated().to_numpy()
        keep, drop = ids[group[first_of_label]].tolist(), ids[group[~first_of_label]].tolist()
        drops.append(drop)
        if rank >= MAX_GROUP_FINDINGS:
            continue
        counts = rows_.label_counts(group)
        large = len(group) >= 3 and len(group) > LARGE_SHARE * n
        label_note = "" if len(counts) <= 1 else f" with {len(counts)} different labels"
        findings.append(Finding(
            check="exact_duplicate", severity=Severity.HIGH if large else Severity.MEDIUM,
            message=f"{len(group)} rows have the same text{label_note}: \"{str(rows_.texts[group[0]])[:80]}\"",
            rows=ids[group[:MAX_ROW_IDS]].tolist(), labels=sorted(counts),
            evidence={"size": len(group), "share": round(len(group) / n, 6),
                      "text": _clip(str(rows_.texts[group[0]])),
                      "normalized": _clip(ctx.features.normalized[group[0]]),
                      "labels": counts, "keep": keep, "drop": drop},
        ))
    findings.append(_summary("exact_duplicate", "groups of identical texts", groups, drops, n, MAX_GROUP_FINDINGS))
    return findings


@check("near_duplicate", description="Near-identical rows (not identical) with the same label")
def near_duplicate(ctx: AuditContext) -> list[Finding]:
    """Clusters of near-identical texts sharing a label; keeps the first row of each cluster."""
    nodes = _nodes(ctx)
    edges = _near_edges(ctx, nodes)
    same = edges[edges["same_label"]]
    if same.empty:
        return []
    comp, members_of = _components(len(nodes.code), same["a"].to_numpy(), same["b"].to_numpy())
    same = same.assign(comp=comp[same["a"].to_numpy()])
    sim_min = same.groupby("comp")["similarity"].min().to_dict()
    sim_max = same.groupby("comp")["similarity"].max().to_dict()
    ds = ctx.train
    rows_ = _Rows.of(ctx)
    ids = rows_.ids
    clusters = []
    for members in members_of:
        if len(members) < 2:
            continue
        clusters.append((members, np.sort(np.concatenate([nodes.positions[m] for m in members]))))
    clusters.sort(key=lambda mc: (-len(mc[1]), mc[1][0]))
    n = len(ds)
    findings, drops, groups = [], [], []
    for rank, (members, positions) in enumerate(clusters):
        drop = ids[positions[1:]].tolist()
        drops.append(drop)
        groups.append(positions)
        if rank >= MAX_GROUP_FINDINGS:
            continue
        c = comp[members[0]]
        examples = [{**rows_.row(int(nodes.positions[m][0])), "copies": len(nodes.positions[m])}
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
                      "examples": examples, "keep": [ids[positions[0]]], "drop": drop},
        ))
    findings.append(_summary("near_duplicate", "clusters of near-identical texts", groups, drops, n,
                             MAX_GROUP_FINDINGS))
    return findings


@check("conflicting_labels", needs=("labels", "classification"),
       description="Identical or near-identical rows with different labels")
def conflicting_labels(ctx: AuditContext) -> list[Finding]:
    """One finding per cluster of (near-)identical texts that carries more than one label."""
    nodes = _nodes(ctx)
    edges = _near_edges(ctx, nodes)
    exact = pd.DataFrame({"node": np.arange(len(nodes.code)), "code": nodes.code})
    exact = exact.merge(exact, on="code", suffixes=("_a", "_b"))
    exact = exact[exact["node_a"] < exact["node_b"]]
    conflicts = pd.concat([
        pd.DataFrame({"a": exact["node_a"].to_numpy(), "b": exact["node_b"].to_numpy(), "similarity": 1.0}),
        edges.loc[~edges["same_label"], ["a", "b", "similarity"]],
    ], ignore_index=True)
    if conflicts.empty:
        return []
    all_a = np.concatenate([edges["a"].to_numpy(), conflicts["a"].to_numpy()])
    all_b = np.concatenate([edges["b"].to_numpy(), conflicts["b"].to_numpy()])
    comp, members_of = _components(len(nodes.code), all_a, all_b)
    conflicts["comp"] = comp[conflicts["a"].to_numpy()]
    conflicts = conflicts.sort_values(["comp", "similarity", "a", "b"], ascending=[True, False, True, True])
    clusters = []
    for c, pairs in conflicts.groupby("comp", sort=False):
        members = members_of[int(c)]  # type: ignore[arg-type]
        positions = np.sort(np.concatenate([nodes.positions[m] for m in members]))
        clusters.append((c, members, positions, pairs))
    clusters.sort(key=lambda x: (-len(x[2]), x[2][0]))
    rows_ = _Rows.of(ctx)
    ids = rows_.ids
    findings = []
    for _, members, positions, pairs in clusters[:MAX_CONFLICT_FINDINGS]:
        counts = rows_.label_counts(positions)
        shown_pairs = [{"a": rows_.row(int(nodes.positions[a][0])), "b": rows_.row(int(nodes.positions[b][0])),
                        "similarity": round(float(s), 4)}
                       for a, b, s in pairs[["a", "b", "similarity"]].head(MAX_EXAMPLES).itertuples(index=False)]
        label_pairs = sorted({tuple(sorted((str(nodes.label[a]), str(nodes.label[b]))))
                              for a, b in pairs[["a", "b"]].itertuples(index=False)})
        top: dict[str, Any] = shown_pairs[0]
        findings.append(Finding(
            check="conflicting_labels", severity=Severity.HIGH,
            message=(f"{len(positions)} near-identical rows carry {len(counts)} different labels, e.g. "
                     f"\"{str(top['a']['text'])[:60]}\" [{top['a']['label']}] vs "
                     f"\"{str(top['b']['text'])[:60]}\" [{top['b']['label']}]"),
            rows=ids[positions[:MAX_ROW_IDS]].tolist(), labels=sorted(counts)[:MAX_EXAMPLES],
            evidence={"size": len(positions), "labels": counts,
                      "rows": [{**rows_.row(int(nodes.positions[m][0])), "copies": len(nodes.positions[m])}
                               for m in members[:MAX_EXAMPLES]],
                      "similarity": round(float(pairs["similarity"].max()), 4),
                      "similarity_min": round(float(pairs["similarity"].min()), 4),
                      "label_pairs": [list(p) for p in label_pairs[:MAX_EXAMPLES]],
                      "pairs": shown_pairs, "conflicting_pairs": len(pairs)},
        ))
    if len(clusters) > 1:
        rows_in = int(sum(len(c[2]) for c in clusters))
        findings.append(Finding(
            check="conflicting_labels", severity=Severity.INFO,
            message=f"{len(clusters)} clusters of near-identical texts with different labels cover {rows_in} rows",
            evidence={"summary": True, "groups": len(clusters), "rows_in_groups": rows_in,
                      "groups_shown": min(len(clusters), MAX_CONFLICT_FINDINGS),
                      "conflicting_pairs": len(conflicts), "total_rows": len(ctx.train)},
        ))
    return findings
