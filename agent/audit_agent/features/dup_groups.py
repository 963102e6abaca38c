"""Rows grouped for the duplicate checks: distinct (text, label) nodes, near-duplicate edges between
them (from the shared MinHash index) and connected clusters, held as flat numpy arrays so a million
rows group in seconds."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from audit_agent.features.text import normalize

if TYPE_CHECKING:
    from audit_agent.context import AuditContext

MAX_TEXT_CHARS = 300


def clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + "…"


@dataclass
class Groups:
    """A partition of some items into groups, held flat: group g is `items[bounds[g]:bounds[g + 1]]`
    (ascending item order inside a group)."""

    items: np.ndarray
    bounds: np.ndarray

    @classmethod
    def of(cls, group_of: np.ndarray, items: np.ndarray | None = None, n_groups: int | None = None) -> Groups:
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
class Nodes:
    """Rows grouped by (distinct normalised text, label): `node_of[pos]`, and per node its code,
    label and rows (`rows[k]`, ascending)."""

    node_of: np.ndarray
    code: np.ndarray
    label: np.ndarray
    rows: Groups
    first: np.ndarray = field(init=False)  # node -> its first row
    copies: np.ndarray = field(init=False)  # node -> its number of rows

    def __post_init__(self) -> None:
        self.first, self.copies = self.rows.firsts(), self.rows.sizes


def label_keys(ctx: AuditContext) -> np.ndarray:
    """What "same label" compares: the class, the normalised target text for generation data,
    or one shared value for unlabelled data."""
    ds = ctx.train
    if not ds.has_labels:
        return np.full(len(ds), "", dtype=object)
    labels = ds.frame["label"].fillna("").astype(str)
    if ds.kind == "generation":
        return np.array([normalize(t) for t in labels], dtype=object)
    return labels.to_numpy(dtype=object)


def row_keys(ctx: AuditContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct-text code, label key, label key id) of every row."""
    keys = label_keys(ctx)
    label_ids, _ = pd.factorize(keys, sort=False)
    return ctx.features.neighbors.codes, keys, label_ids.astype(np.int64)


def nodes_of(ctx: AuditContext) -> Nodes:
    codes, keys, label_ids = row_keys(ctx)
    node_of, _ = pd.factorize(codes * (int(label_ids.max(initial=0)) + 1) + label_ids, sort=False)
    rows = Groups.of(node_of)
    firsts = rows.firsts()
    return Nodes(node_of, codes[firsts], keys[firsts], rows)


def near_edges(ctx: AuditContext, nodes: Nodes) -> pd.DataFrame:
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


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected component of each of n nodes joined by edges (a, b)."""
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


@dataclass
class Clusters:
    """Groups of rows (components of nodes), ranked by size (largest first), then first row."""

    comp: np.ndarray  # ranked cluster ids, as component ids
    rows: Groups  # rows of each ranked cluster, ascending
    members: Groups  # nodes of each ranked cluster, ascending

    @classmethod
    def of(cls, comp_of_node: np.ndarray, nodes: Nodes, selected: np.ndarray) -> Clusters:
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
        return cls(ranked, Groups.of(row_rank[in_rows], in_rows, len(ranked)),
                   Groups.of(node_rank[in_nodes], in_nodes, len(ranked)))

    def rest(self, shown: int) -> np.ndarray:
        """Rows after the first of every cluster ranked `shown` or later, in rank order."""
        start = self.rows.bounds[min(shown, len(self.comp))]
        drop = np.ones(len(self.rows.items), dtype=bool)
        drop[self.rows.bounds[:-1]] = False
        return self.rows.items[start:][drop[start:]]


@dataclass
class Rows:
    """The training frame's columns as plain arrays (fast element access)."""

    ids: np.ndarray
    texts: np.ndarray
    labels: np.ndarray | None

    @classmethod
    def of(cls, ctx: AuditContext) -> Rows:
        frame = ctx.train.frame
        labels = frame["label"].to_numpy(dtype=object) if ctx.train.has_labels else None
        return cls(frame["id"].to_numpy(dtype=object), frame["text"].to_numpy(dtype=object), labels)

    def label(self, pos: int) -> str | None:
        value = None if self.labels is None else self.labels[pos]
        return label_text(value)

    def row(self, pos: int) -> dict[str, Any]:
        """{id, text, label} of the row at position `pos`."""
        return {"id": self.ids[pos], "text": clip(str(self.texts[pos])), "label": self.label(pos)}

    def label_counts(self, positions: np.ndarray) -> dict[str, int]:
        if self.labels is None:
            return {}
        counts = Counter(label_text(v) or "" for v in self.labels[positions].tolist())
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def label_text(value: Any) -> str | None:
    return None if value is None or value != value else clip(str(value))
