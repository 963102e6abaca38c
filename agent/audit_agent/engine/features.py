"""The engine's results in the shapes the checks read from `ctx.features`.

- `EngineNeighbors`: what the duplicate and contamination checks read of a `NeighborIndex` (codes,
  first positions, near pairs with similarities, `query` answers for the eval and real texts).
- `EngineOOF`: what `label_overlap` and the reports read of an `OOFResult` (classes, given, predicted,
  fold, temperature, notes, the probability of the predicted label), without the n x k matrix.
- `EngineFeatures`: `Features` backed by them; `normalized` is computed row by row on demand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audit_agent.context import AuditContext
from audit_agent.engine.text_views import LazyNormalized
from audit_agent.features import Features
from audit_agent.features.label_signals import LabelIssues


@dataclass
class EngineNeighbors:
    """Exact and near-duplicate structure of the training texts, computed over partitions."""

    codes: np.ndarray
    first_position: np.ndarray
    unique_pairs: np.ndarray
    unique_similarity: np.ndarray
    threshold: float
    answers: dict[int, list[list[tuple[int, float]]]] = field(default_factory=dict)

    @staticmethod
    def key(normalized_texts: Sequence[str]) -> int:
        return hash(tuple(normalized_texts))

    def pairs(self) -> list[tuple[int, int, float]]:
        u, v = self.first_position[self.unique_pairs]
        return list(zip(u.tolist(), v.tolist(), self.unique_similarity.tolist(), strict=True))

    def query(self, normalized_texts: list[str]) -> list[list[tuple[int, float]]]:
        """Answers for the eval and real texts, computed in the band shuffle with the training rows."""
        found = self.answers.get(self.key(normalized_texts))
        if found is None:
            raise RuntimeError("the engine answered near-duplicate look-ups for the eval and real splits only")
        return found


class PredictedProbs:
    """`probs[rows, label]` for rows whose predicted label is `label` (what `label_overlap` reads)."""

    def __init__(self, predicted: np.ndarray, p_predicted: np.ndarray, k: int) -> None:
        self.predicted, self.p_predicted = predicted, p_predicted
        self.shape = (len(predicted), k)

    def __getitem__(self, key: tuple[Any, Any]) -> np.ndarray:
        rows, label = key
        rows = np.asarray(rows)
        if not np.all(self.predicted[rows] == label):
            raise KeyError("the engine keeps the probability of each row's predicted label only")
        return self.p_predicted[rows]


@dataclass
class EngineOOF:
    """Out-of-fold results per row: the label columns of an `OOFResult` without its matrices."""

    classes: list[str]
    given: np.ndarray
    predicted: np.ndarray
    p_predicted: np.ndarray
    temperature: float
    fold: np.ndarray
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    X: Any = None
    scores: Any = None

    @property
    def probs(self) -> PredictedProbs:
        return PredictedProbs(self.predicted, self.p_predicted, len(self.classes))

    @property
    def labelled(self) -> np.ndarray:
        return self.given >= 0

    def accuracy(self) -> float:
        m = self.labelled
        return float((self.predicted[m] == self.given[m]).mean()) if m.any() else float("nan")


class EngineFeatures(Features):
    """`Features` whose neighbours, out-of-fold results and label-issue signals come from the engine."""

    def __init__(self, ctx: AuditContext, neighbors: EngineNeighbors, oof: Any, issues: LabelIssues | None) -> None:
        super().__init__(ctx)
        self.__dict__["neighbors"] = neighbors
        self.__dict__["normalized"] = LazyNormalized(ctx.train.frame["text"])
        if oof is not None:
            self.__dict__["oof"] = oof
        self._issues = issues

    def label_issues(self, threshold: float) -> LabelIssues:
        if self._issues is None:
            return super().label_issues(threshold)
        res = self._issues
        flagged = (res.score >= threshold) & (np.asarray(self.oof.given) >= 0)
        return LabelIssues(score=res.score, flagged=flagged, suggested=res.suggested, p_given=res.p_given,
                           p_suggested=res.p_suggested, p_knn=res.p_knn, cleanlab=res.cleanlab, threshold=threshold)
