"""Per-row signals that owe nothing to the model, for verifying judge claims: out-of-fold classifier
probabilities (given label, proposed label, top two), the labels of the row's nearest neighbours in
the classifier's TF-IDF space, and its near-duplicate group. Each is optional: a missing classifier
(generation data, feature not built) or neighbour index just leaves its signal empty."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from audit_agent.context import AuditContext

NEIGHBOURS_K = 5
"""Nearest neighbours (cosine, TF-IDF of the out-of-fold classifier) whose labels are read per row."""


@dataclass
class RowSignals:
    """What the deterministic features say about one row.

    `p_best`/`p_given`: OOF probabilities of the judge's best label and of the given label;
    `rank_best`: the best label's rank among the classifier's labels (1 = its top label);
    `classes`: how many labels the classifier knows;
    `oof_top`/`p_top`/`p_second`: the classifier's top label and its top two probabilities;
    `knn_labels`: labels of the row's nearest neighbours outside its near-duplicate group;
    `neighbour_labels`: labels of the other rows of its near-duplicate group; `conflict_group`: that
    group carries a label other than the given one."""

    p_best: float | None = None
    p_given: float | None = None
    rank_best: int | None = None
    classes: int | None = None
    oof_top: str | None = None
    p_top: float | None = None
    p_second: float | None = None
    neighbour_labels: list[str] = field(default_factory=list)
    conflict_group: bool = False
    knn_labels: list[str] = field(default_factory=list)

    @property
    def margin(self) -> float | None:
        """OOF probability of the top label minus that of the second."""
        if self.p_top is None or self.p_second is None:
            return None
        return self.p_top - self.p_second


class SignalSource:
    """Deterministic per-row signals from `ctx.features`, computed lazily and once."""

    def __init__(self, ctx: AuditContext) -> None:
        self.ctx = ctx
        frame = ctx.train.frame
        self.ids: list[str] = [str(i) for i in frame["id"].tolist()]
        self.position: dict[str, int] = {rid: pos for pos, rid in enumerate(self.ids)}
        self.labels: list[str] = [str(v) for v in frame["label"].tolist()] if "label" in frame else []
        self.notes: list[str] = []

    @cached_property
    def oof(self) -> Any | None:
        if self.ctx.train.kind != "classification" or not self.ctx.train.has_labels:
            self.notes.append("no out-of-fold classifier: data has no class labels")
            return None
        try:
            oof = self.ctx.features.oof
            classes = [str(c) for c in oof.classes]
            if len(oof.probs) != len(self.ids):
                raise ValueError("OOF probabilities are not aligned with the training rows")
        except (ImportError, AttributeError, NotImplementedError, ValueError) as exc:
            self.notes.append(f"no out-of-fold classifier: {type(exc).__name__}: {str(exc)[:120]}")
            return None
        self._class_index = {c: i for i, c in enumerate(classes)}
        self._classes = classes
        return oof

    @cached_property
    def groups(self) -> dict[int, list[int]]:
        """Row position -> positions of its near-duplicate group (the row itself included)."""
        try:
            index = self.ctx.features.neighbors
            raw = list(index.groups())
        except (ImportError, AttributeError, NotImplementedError, ValueError, TypeError) as exc:
            self.notes.append(f"no near-duplicate groups: {type(exc).__name__}: {str(exc)[:120]}")
            return {}
        out: dict[int, list[int]] = {}
        for group in raw:
            positions = [p for p in (self._pos(m) for m in group) if p is not None]
            for p in positions:
                out[p] = positions
        return out

    @cached_property
    def _knn(self) -> Any | None:
        """sklearn NearestNeighbors (cosine, brute force) over the classifier's TF-IDF rows."""
        oof = self.oof
        matrix = getattr(oof, "X", None) if oof is not None else None
        if matrix is None or matrix.shape[0] != len(self.ids) or len(self.ids) < 2:
            return None
        from sklearn.neighbors import NearestNeighbors

        return NearestNeighbors(n_neighbors=min(NEIGHBOURS_K + 1, len(self.ids)), metric="cosine",
                                algorithm="brute").fit(matrix)

    def knn_labels(self, pos: int, exclude: Sequence[int] = ()) -> list[str]:
        """Labels of the row's nearest neighbours, nearest first; the row itself and `exclude` (its
        near-duplicate group: their labels are a signal of their own) left out."""
        knn, oof = self._knn, self.oof
        if knn is None or oof is None or not self.labels:
            return []
        skip = {pos, *exclude}
        _, idx = knn.kneighbors(oof.X[pos], n_neighbors=min(NEIGHBOURS_K + len(skip), len(self.ids)))
        return [self.labels[int(p)] for p in idx[0] if int(p) not in skip][:NEIGHBOURS_K]

    def _pos(self, member: Any) -> int | None:
        """Group members may be row positions (ints) or row ids (str)."""
        if isinstance(member, str):
            return self.position.get(member)
        try:
            pos = int(member)
        except (TypeError, ValueError):
            return None
        return pos if 0 <= pos < len(self.ids) else None

    def prob(self, pos: int, label: str) -> float | None:
        oof = self.oof
        if oof is None or label not in self._class_index:
            return None
        return float(oof.probs[pos][self._class_index[label]])

    def rank(self, pos: int, label: str) -> int | None:
        """The label's rank among the classifier's labels for the row: 1 + how many get more probability."""
        oof = self.oof
        if oof is None or label not in self._class_index:
            return None
        row = np.asarray(oof.probs[pos], dtype=float)
        return int((row > row[self._class_index[label]]).sum()) + 1

    def oof_top(self, pos: int) -> str | None:
        """The classifier's most likely label for the row."""
        oof = self.oof
        if oof is None:
            return None
        return self._classes[int(np.argmax(np.asarray(oof.probs[pos])))]

    def _top_two(self, pos: int) -> tuple[float | None, float | None]:
        oof = self.oof
        if oof is None:
            return None, None
        row = np.sort(np.asarray(oof.probs[pos], dtype=float))[::-1]
        return float(row[0]), float(row[1]) if len(row) > 1 else 0.0

    def for_row(self, row_id: str, best_label: str, given_label: str) -> RowSignals:
        pos = self.position.get(str(row_id))
        if pos is None:
            return RowSignals()
        group = [p for p in self.groups.get(pos, []) if p != pos][:1000]
        neighbour_labels = [self.labels[p] for p in group] if self.labels else []
        conflict = bool(neighbour_labels) and any(lab != given_label for lab in neighbour_labels)
        p_top, p_second = self._top_two(pos)
        return RowSignals(p_best=self.prob(pos, best_label), p_given=self.prob(pos, given_label),
                          rank_best=self.rank(pos, best_label),
                          classes=len(self._classes) if self.oof is not None else None,
                          oof_top=self.oof_top(pos), p_top=p_top, p_second=p_second,
                          neighbour_labels=neighbour_labels, conflict_group=conflict,
                          knn_labels=self.knn_labels(pos, group))

    def own_probability(self) -> np.ndarray | None:
        """OOF probability of each row's own label (NaN for unlabelled rows), or None without OOF."""
        oof = self.oof
        if oof is None or not self.labels:
            return None
        out = np.full(len(self.ids), np.nan)
        for pos, label in enumerate(self.labels):
            col = self._class_index.get(label)
            if col is not None:
                out[pos] = float(oof.probs[pos][col])
        return out

    def rank_rows_by_label(self, positions: Sequence[int], label: str) -> list[int]:
        """`positions` sorted by OOF probability of `label`, highest first (unchanged without OOF)."""
        if self.oof is None or label not in self._class_index:
            return list(positions)
        col = np.asarray(self.oof.probs)[np.asarray(positions, dtype=int), self._class_index[label]]
        return [positions[i] for i in np.argsort(-col, kind="stable")]

    def rank_rows_by_doubt(self, positions: Sequence[int]) -> list[int]:
        """`positions` sorted by OOF probability of their own label, lowest first (unchanged without OOF)."""
        own = self.own_probability()
        if own is None:
            return list(positions)
        col = np.nan_to_num(own[np.asarray(positions, dtype=int)], nan=1.0)
        return [positions[i] for i in np.argsort(col, kind="stable")]
