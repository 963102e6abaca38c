"""Duplicate rows inside the training set: exact duplicates, near duplicates with the same label,
and (near-)identical rows whose labels disagree.

`evidence["drop"]` of `exact_duplicate` and `near_duplicate` findings is exact and complete: the
union over both checks drops all but one row of every same-label duplicate cluster (the first row
stays). Rows of one text with different labels are all kept; `conflicting_labels` reports them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
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
class _Groups:
    """A partition of some items into groups, held flat: group g is `items[bounds[g]:bounds[g + 1]]`
    (ascending item order inside a group)."""

    items: np.ndarray
    bounds: np.ndarray

    @classmethod
    def of(cls, group_of: np.ndarray, items: np.ndarray | None = None, n_groups: int | None = None) -> _Groups:
        """Group `items` (default: 0..len-1, ascending) by `group_of` (ids 0..n_groups-1)."""
        items = np.arange(len(group_of)) if items is None else items
        order = np.argsort(group_of, kind="stable")
        sizes = np.bincount(group_of, minlength=n_groups or 0)
        return cls(items[order], np.r_[0, np.cumsum(sizes)])

    def __getitem__(self, g: int) -> np.ndarray:
        return self.items[self.bounds[g]:self.bounds[g + 1]]

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.bounds)

    def firsts(self) -> np.ndarray:
        """First item of every group (groups must be non-empty)."""
        return self.items[self.bounds[:-1]]


@dataclass
class _Nodes:
    """Rows grouped by (distinct normalised text, label): `node_of[pos]`, and per node its code,
    label and rows (`rows[k]`, ascending)."""

    node_of: np.ndarray
    code: np.ndarray
    label: np.ndarray
    rows: _Groups
    first: np.ndarray = field(init=False)  # node -> its first row
    copies: np.ndarray = field(init=False)  # node -> its number of rows

    def __post_init__(self) -> None:
        self.first, self.copies = self.rows.firsts(), self.rows.sizes


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


def _row_keys(ctx: AuditContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct-text code, label key, label key id) of every row."""
    label_keys = _label_keys(ctx)
    label_ids, _ = pd.factorize(label_keys, sort=False)
    return ctx.features.neighbors.codes, label_keys, label_ids.astype(np.int64)


def _nodes(ctx: AuditContext) -> _Nodes:
    codes, label_keys, label_ids = _row_keys(ctx)
    node_of, _ = pd.factorize(codes * (int(label_ids.max(initial=0)) + 1) + label_ids, sort=False)
    rows = _Groups.of(node_of)
    firsts = rows.firsts()
    return _Nodes(node_of, codes[firsts], label_keys[firsts], rows)


def _near_edges(ctx: AuditContext, nodes: _Nodes) -> pd.DataFrame:
    """Node pairs (a, b, similarity, same_label) joined by a near-duplicate pair of their texts."""
    index = ctx.features.neighbors
    pairs = pd.DataFrame({"u": index.unique_pairs[0], "v": index.unique_pairs[1],
                          "similarity": index.unique_similarity})
    table = pd.DataFrame({"node": np.arange(len(nodes.code)), "code": nodes.code,
                          "label": pd.factorize(nodes.label, sort=False)[0]})
    left = pairs.merge(table.rename(columns={"node": "a", "code": "u", "label": "label_a"}), on="u")
    both = left.merge(table.rename(columns={"node": "b", "code": "v", "label": "label_b"}), on="v")
    both["same_label"] = both["label_a"] == both["label_b"]
    return both[["a", "b", "similarity", "same_label"]]


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected component of each of n nodes joined by edges (a, b)."""
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


@dataclass
class _Clusters:
    """Groups of rows (components of nodes), ranked by size (largest first), then first row."""

    comp: np.ndarray  # ranked cluster ids, as component ids
    rows: _Groups  # rows of each ranked cluster, ascending
    members: _Groups  # nodes of each ranked cluster, ascending

    @classmethod
    def of(cls, comp_of_node: np.ndarray, nodes: _Nodes, selected: np.ndarray) -> _Clusters:
        """Clusters for the components `selected` (component ids) of `comp_of_node`."""
        n_comp = int(comp_of_node.max(initial=-1)) + 1
        rank_of = np.full(n_comp, -1, dtype=np.int64)
        row_comp = comp_of_node[nodes.node_of]
        rows_per_comp = np.bincount(row_comp, minlength=n_comp)[selected]
        first_row = np.full(n_comp, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first_row, comp_of_node, nodes.first)
        ranked = selected[np.lexsort((first_row[selected], -rows_per_comp))]
        rank_of[ranked] = np.arange(len(ranked))
        row_rank = rank_of[row_comp]
        in_rows = np.flatnonzero(row_rank >= 0)
        node_rank = rank_of[comp_of_node]
        in_nodes = np.flatnonzero(node_rank >= 0)
        return cls(ranked, _Groups.of(row_rank[in_rows], in_rows, len(ranked)),
                   _Groups.of(node_rank[in_nodes], in_nodes, len(ranked)))

    def rest(self, shown: int) -> np.ndarray:
        """Rows after the first of every cluster ranked `shown` or later, in rank order."""
        start = self.rows.bounds[min(shown, len(self.comp))]
        drop = np.ones(len(self.rows.items), dtype=bool)
        drop[self.rows.bounds[:-1]] = False
        return self.rows.items[start:][drop[start:]]


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
        return _label_text(value)

    def row(self, pos: int) -> dict[str, Any]:
        """{id, text, label} of the row at position `pos`."""
        return {"id": self.ids[pos], "text": _clip(str(self.texts[pos])), "label": self.label(pos)}

    def label_counts(self, positions: np.ndarray) -> dict[str, int]:
        if self.labels is None:
            return {}
        counts = Counter(_label_text(v) or "" for v in self.labels[positions].tolist())
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _label_text(value: Any) -> str | None:
    return None if value is None or value != value else _clip(str(value))


def _summary(check_name: str, what: str, groups: _Groups, drop_count: int, rest: list[Any], n_rows: int,
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


@check("exact_duplicate", description="Rows whose normalised text is identical")
def exact_duplicate(ctx: AuditContext) -> list[Finding]:
    """One finding per group of identical normalised texts (largest first), plus a summary."""
    codes, _, label_ids = _row_keys(ctx)
    copies = np.bincount(codes)
    group_codes = np.flatnonzero(copies >= 2)
    if len(group_codes) == 0:
        return []
    first_position = ctx.features.neighbors.first_position
    ranked = group_codes[np.lexsort((first_position[group_codes], -copies[group_codes]))]
    rank_of_code = np.full(len(copies), -1, dtype=np.int64)
    rank_of_code[ranked] = np.arange(len(ranked))
    in_group = np.flatnonzero(copies[codes] >= 2)
    groups = _Groups.of(rank_of_code[codes[in_group]], in_group, len(ranked))
    # a row is dropped when an earlier row has the same text and label; rows of other labels stay
    dropped = pd.Series(codes * (int(label_ids.max(initial=0)) + 1) + label_ids).duplicated().to_numpy()
    rows_ = _Rows.of(ctx)
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
                      "text": _clip(str(rows_.texts[group[0]])),
                      "normalized": _clip(normalized[group[0]]),
                      "labels": counts, "keep": ids[group[~dropped[group]]].tolist(),
                      "drop": ids[group[dropped[group]]].tolist()},
        ))
    rest = groups.items[groups.bounds[min(MAX_GROUP_FINDINGS, len(ranked))]:]
    findings.append(_summary("exact_duplicate", "groups of identical texts", groups, int(dropped.sum()),
                             ids[rest[dropped[rest]]].tolist(), n, MAX_GROUP_FINDINGS))
    return findings


@check("near_duplicate", description="Near-identical rows (not identical) with the same label")
def near_duplicate(ctx: AuditContext) -> list[Finding]:
    """Clusters of near-identical texts sharing a label; keeps the first row of each cluster."""
    nodes = _nodes(ctx)
    edges = _near_edges(ctx, nodes)
    same = edges[edges["same_label"]]
    if same.empty:
        return []
    comp = _components(len(nodes.code), same["a"].to_numpy(), same["b"].to_numpy())
    clusters = _Clusters.of(comp, nodes, np.flatnonzero(np.bincount(comp) >= 2))
    by_comp = same.assign(comp=comp[same["a"].to_numpy()]).groupby("comp")["similarity"]
    sim_min, sim_max = by_comp.min().to_dict(), by_comp.max().to_dict()
    rows_ = _Rows.of(ctx)
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


def _exact_conflicts(nodes: _Nodes) -> pd.DataFrame:
    """Node pairs (a < b) with the same text and different labels, similarity 1.0."""
    shared = np.flatnonzero(np.bincount(nodes.code)[nodes.code] >= 2)
    table = pd.DataFrame({"node": shared, "code": nodes.code[shared]})
    exact = table.merge(table, on="code", suffixes=("_a", "_b"))
    exact = exact[exact["node_a"] < exact["node_b"]]
    return pd.DataFrame({"a": exact["node_a"].to_numpy(), "b": exact["node_b"].to_numpy(), "similarity": 1.0})


@check("conflicting_labels", needs=("labels", "classification"),
       description="Identical or near-identical rows with different labels")
def conflicting_labels(ctx: AuditContext) -> list[Finding]:
    """One finding per cluster of (near-)identical texts that carries more than one label."""
    nodes = _nodes(ctx)
    edges = _near_edges(ctx, nodes)
    conflicts = pd.concat([_exact_conflicts(nodes), edges.loc[~edges["same_label"], ["a", "b", "similarity"]]],
                          ignore_index=True)
    if conflicts.empty:
        return []
    all_a = np.concatenate([edges["a"].to_numpy(), conflicts["a"].to_numpy()])
    all_b = np.concatenate([edges["b"].to_numpy(), conflicts["b"].to_numpy()])
    comp = _components(len(nodes.code), all_a, all_b)
    conflicts["comp"] = comp[conflicts["a"].to_numpy()]
    clusters = _Clusters.of(comp, nodes, np.unique(conflicts["comp"].to_numpy()))
    rank_of = pd.Series(np.arange(len(clusters.comp)), index=clusters.comp)
    conflicts["rank"] = rank_of.reindex(conflicts["comp"].to_numpy()).to_numpy()
    conflicts = conflicts.sort_values(["rank", "similarity", "a", "b"], ascending=[True, False, True, True],
                                      ignore_index=True)
    pair_bounds = np.searchsorted(conflicts["rank"].to_numpy(), np.arange(len(clusters.comp) + 1))
    pair_a, pair_b = conflicts["a"].to_numpy(), conflicts["b"].to_numpy()
    pair_sim = conflicts["similarity"].to_numpy()
    rows_ = _Rows.of(ctx)
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
