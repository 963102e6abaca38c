"""Out-of-fold probabilities and label-issue signals over partitions: the partitioned form of the
large path of `features.classifier.out_of_fold` and of `features.label_signals.detect_label_issues`.

The driver holds per-row integers and a few floats, never the feature matrix or the n x k
probabilities. Passes over the partitions (document frequencies come with the scan):
1. `gather_rows`: hashed features of the rows each fold trains on and of the temperature sample;
   `fit_fold` fits one SGD linear SVM per fold (as tasks), on the same capped, stratified rows;
2. `score_partition`: every row scored by its fold's model, softmax at the fitted temperature, and
   per row what the checks read: p(given), the best other label and its p, the predicted label;
3. `knn_partition`: each row's top-k cosine similarities to the rows of its given and of its
   suggested label, for the lowest-p(given) candidates, merged over partitions on the driver.
Same features, folds, caps, seeds and temperature as the local path: the same probabilities.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from audit_agent.features.classifier import HashedFeatures, _full_scores, _make_model, softmax


@dataclass
class FoldModel:
    """One fold's model and the feature columns it uses, or the class prior for a degenerate fold."""

    model: Any = None
    cols: np.ndarray | None = None
    prior: np.ndarray | None = None

    def scores(self, X: sp.csr_matrix, k: int) -> np.ndarray:
        if self.prior is not None:
            return np.tile(self.prior, (X.shape[0], 1))
        assert self.cols is not None
        return _full_scores(self.model, X[:, self.cols], range(k)).astype(np.float32)


def _features(texts: list[str], idf: list[np.ndarray]) -> sp.csr_matrix:
    hasher = HashedFeatures()
    hasher.idf = idf
    return hasher.transform(texts)


def gather_rows(part: Any, rows: np.ndarray, idf: list[np.ndarray]) -> sp.csr_matrix:
    """Hashed features of the partition's rows at local positions `rows` (ascending)."""
    texts = part["text"].tolist()
    return _features([str(texts[i]) for i in rows.tolist()], idf)


def fit_fold(X_train: sp.csr_matrix, y: np.ndarray, k: int, seed: int) -> FoldModel:
    """`_fold_scores`'s model: columns the training rows use at least twice, SGD linear SVM; the class
    prior when the fold has one class or no features."""
    prior = np.log(np.bincount(y, minlength=k) + 1e-3).astype(np.float32)
    if len(np.unique(y)) < 2:
        return FoldModel(prior=prior)
    cols = np.flatnonzero(np.bincount(X_train.indices, minlength=X_train.shape[1]) >= 2)
    if len(cols) == 0:
        cols = np.unique(X_train.indices)
    if len(cols) == 0:
        return FoldModel(prior=prior)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = _make_model(seed, True).fit(X_train[:, cols], y)
    return FoldModel(model=model, cols=cols)


def score_matrix(X: sp.csr_matrix, fold: np.ndarray, models: list[FoldModel], k: int) -> np.ndarray:
    """float32 decision scores, each row by the model of its fold."""
    out = np.empty((X.shape[0], k), dtype=np.float32)
    for f, model in enumerate(models):
        rows = np.flatnonzero(fold == f)
        if len(rows):
            out[rows] = model.scores(X[rows], k)
    return out


def score_partition(part: Any, fold: np.ndarray, given: np.ndarray, models: list[FoldModel], idf: list[np.ndarray],
                    k: int, temperature: float, keep_rows: np.ndarray,
                    keep_features: bool) -> tuple[dict[str, np.ndarray], sp.csr_matrix | None]:
    """Per row: p_given, suggested (best other label), p_suggested, predicted, p_predicted; and the
    full probabilities of the rows at local positions `keep_rows` (the cleanlab sample). The features
    come back as a second output when `keep_features` (they then stay in the store for the kNN pass)."""
    X = _features([str(t) for t in part["text"].tolist()], idf)
    probs = softmax(score_matrix(X, fold, models, k), temperature)
    n = len(given)
    rows = np.arange(n)
    safe = np.clip(given, 0, None)
    p_given = np.where(given >= 0, probs[rows, safe], 1.0).astype(np.float64)
    predicted = probs.argmax(axis=1)
    p_predicted = probs[rows, predicted]
    kept = probs[keep_rows].copy()
    probs[rows, safe] = -1.0  # the best label other than the given one (column 0 for unlabelled rows)
    suggested = probs.argmax(axis=1)
    return {"p_given": p_given, "suggested": suggested.astype(np.int64),
            "p_suggested": probs[rows, suggested].astype(np.float64), "predicted": predicted.astype(np.int64),
            "p_predicted": p_predicted.astype(np.float32), "kept": kept}, (X if keep_features else None)


def knn_partition(part: Any, features: sp.csr_matrix | None, start: int, given: np.ndarray, cand_X: sp.csr_matrix,
                  cand_pos: np.ndarray, cand_cls: list[np.ndarray], idf: list[np.ndarray], top: int) -> list[np.ndarray]:
    """For every candidate and every class array in `cand_cls` (the given, the suggested label), the
    `top` highest cosine similarities (padded with -inf) to this partition's rows of that class,
    the candidate itself left out. The partition's features are computed once for both."""
    outs = [np.full((len(cand_pos), top), -np.inf) for _ in cand_cls]
    wanted = np.isin(given, np.unique(np.concatenate(cand_cls)))
    if not wanted.any():
        return outs
    member_rows = np.flatnonzero(wanted)
    if features is not None:  # kept from the scoring pass
        X = features[member_rows]
    else:
        texts = part["text"].tolist()
        X = _features([str(texts[i]) for i in member_rows.tolist()], idf)
    member_cls = given[member_rows]
    member_pos = member_rows + start
    for out, cls in zip(outs, cand_cls, strict=True):
        for c in np.unique(cls):
            members = np.flatnonzero(member_cls == c)
            q = np.flatnonzero(cls == c)
            if len(members) == 0 or len(q) == 0:
                continue
            sims = (cand_X[q] @ X[members].T).toarray()
            sims[cand_pos[q][:, None] == member_pos[members][None, :]] = -np.inf
            kk = min(top, sims.shape[1])
            out[q, :kk] = -np.partition(-sims, kk - 1, axis=1)[:, :kk]
    return outs


def merge_knn(tops: list[np.ndarray], top: int) -> np.ndarray:
    """Mean of the `top` highest finite similarities over all partitions (0 when there are none), as
    `_class_similarity` computes it over all rows at once."""
    if not tops:
        return np.zeros(0)
    both = np.concatenate(tops, axis=1)
    kk = min(top, both.shape[1])
    best = -np.partition(-both, kk - 1, axis=1)[:, :kk]
    best[~np.isfinite(best)] = np.nan
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        vals = np.nanmean(best, axis=1)
    return np.nan_to_num(vals, nan=0.0)
