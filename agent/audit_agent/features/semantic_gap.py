"""Meaning-level comparisons of the training set with other rows (eval, real): which real rows no
training row covers in meaning, how well train and real separate on embeddings, and a pilot
classifier on frozen embeddings. Pure functions: vectors, labels and ids in, small results out.

"Uncovered" is calibrated inside the data: a real row is uncovered when its nearest training row is
less similar than `COVERED_QUANTILE` of training rows are to their own nearest training row
(leave-one-out), i.e. further from the training set than almost every training row is from the rest.
With labels, the nearest training row of the row's own label is compared with the same statistic
for training rows of that label.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.cluster import AgglomerativeClustering
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.model_selection import RepeatedStratifiedKFold, train_test_split

from audit_agent.features.semantic import class_similarity
from audit_agent.features.vector_index import knn

COVERED_QUANTILE = 0.05
REFERENCE_ROWS = 5000
MAX_CLUSTERS = 5
MAX_CLUSTERS_PER_LABEL = 3
EXAMPLES = 5
MAX_SIDE_ROWS = 500
MAX_ROWS_A = 2000
MIN_ROWS_FOR_AUC = 10
PILOT_C = 10.0
HELD_OUT_SHARE = 0.2
MAX_FIT_ROWS = 15_000


@dataclass
class UncoveredRow:
    id: Any
    label: str | None
    nearest_train_id: Any
    similarity: float
    threshold: float


@dataclass
class CoverageCluster:
    """Uncovered real rows that mean similar things (one label, or all rows when unlabelled)."""

    label: str | None
    size: int
    rows: list[Any]
    examples: list[UncoveredRow]


@dataclass
class Coverage:
    """All real rows' coverage: how many were uncovered, the thresholds used, the clusters."""

    real_rows: int
    uncovered: int
    threshold: float
    per_label_thresholds: dict[str, float] = field(default_factory=dict)
    clusters: list[CoverageCluster] = field(default_factory=list)


def _label_list(labels: Sequence[Any] | None, n: int) -> list[str | None]:
    if labels is None:
        return [None] * n
    return [None if v is None or v != v or str(v) == "" else str(v) for v in labels]


def _reference_rows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=REFERENCE_ROWS, replace=False)) if n > REFERENCE_ROWS else np.arange(n)


def _loo_nearest(emb: np.ndarray, ref: np.ndarray, seed: int) -> np.ndarray:
    """Cosine similarity of each `ref` row to its nearest other row of `emb`."""
    idx, sim = knn(emb, 2, emb[ref], seed=seed)
    return np.where(idx[:, 0] == ref, sim[:, 1], sim[:, 0])


def _clusters(vecs: np.ndarray, k: int) -> np.ndarray:
    if len(vecs) <= 1 or k <= 1:
        return np.zeros(len(vecs), dtype=np.int64)
    model = AgglomerativeClustering(n_clusters=min(k, len(vecs)), metric="cosine", linkage="average")
    return model.fit_predict(vecs).astype(np.int64)


def uncovered_real_rows(train_emb: np.ndarray, real_emb: np.ndarray, real_ids: Sequence[Any],
                        train_ids: Sequence[Any], *, real_labels: Sequence[Any] | None = None,
                        train_labels: Sequence[Any] | None = None, quantile: float = COVERED_QUANTILE,
                        seed: int = 0) -> Coverage:
    """Real rows with no training row near them in meaning, in at most `MAX_CLUSTERS` clusters
    (per label, up to `MAX_CLUSTERS_PER_LABEL`, when both sides are labelled), largest first."""
    n_real = len(real_ids)
    if n_real == 0 or len(train_ids) < 2:
        return Coverage(real_rows=n_real, uncovered=0, threshold=float("nan"))
    idx, sim = knn(train_emb, 1, real_emb, seed=seed)
    near_pos, near_sim = idx[:, 0].copy(), sim[:, 0].astype(np.float64)
    ref = _reference_rows(len(train_ids), seed)
    threshold = float(np.quantile(_loo_nearest(train_emb, ref, seed), quantile))
    r_lab, t_lab = _label_list(real_labels, n_real), _label_list(train_labels, len(train_ids))
    labelled = real_labels is not None and train_labels is not None and any(r_lab) and any(t_lab)
    limit = np.full(n_real, threshold)
    per_label: dict[str, float] = {}
    if labelled:
        names = sorted({v for v in t_lab if v is not None})
        code = {c: i for i, c in enumerate(names)}
        t_codes = np.array([code.get(v, -1) if v is not None else -1 for v in t_lab])
        r_codes = np.array([code.get(v, -1) if v is not None else -1 for v in r_lab])
        ref_own = class_similarity(train_emb, ref, t_codes[ref], t_codes, 1)
        for c in np.unique(r_codes[r_codes >= 0]):
            vals = ref_own[(t_codes[ref] == c) & np.isfinite(ref_own)]
            per_label[names[c]] = float(np.quantile(vals, quantile)) if len(vals) >= 20 else threshold
            members = np.flatnonzero(t_codes == c)
            sel = np.flatnonzero(r_codes == c)
            sims = real_emb[sel] @ train_emb[members].T  # the nearest training row of the same label
            best = sims.argmax(axis=1)
            near_pos[sel], near_sim[sel] = members[best], sims[np.arange(len(sel)), best]
            limit[sel] = per_label[names[c]]
    bad = np.flatnonzero(near_sim < limit)
    groups: dict[str | None, np.ndarray] = {}
    for i in bad:
        key = r_lab[i] if labelled else None
        groups[key] = np.r_[groups.get(key, np.array([], dtype=np.int64)), i]
    clusters: list[CoverageCluster] = []
    for key, members in groups.items():
        assign = _clusters(real_emb[members], MAX_CLUSTERS_PER_LABEL if labelled else MAX_CLUSTERS)
        for c in np.unique(assign):
            rows = members[assign == c]
            rows = rows[np.argsort(near_sim[rows], kind="stable")]
            clusters.append(CoverageCluster(
                label=key, size=len(rows), rows=[real_ids[i] for i in rows],
                examples=[UncoveredRow(real_ids[i], r_lab[i], train_ids[near_pos[i]], round(float(near_sim[i]), 4),
                                       round(float(limit[i]), 4)) for i in rows[:EXAMPLES]]))
    clusters.sort(key=lambda c: (-c.size, str(c.label)))
    return Coverage(real_rows=n_real, uncovered=len(bad), threshold=round(threshold, 4),
                    per_label_thresholds={k: round(v, 4) for k, v in per_label.items()}, clusters=clusters)


@dataclass
class EmbeddingSeparability:
    """Cross-validated ROC AUC of a train-vs-real classifier on embeddings (0.5 = alike)."""

    auc: float
    auc_std: float
    n_a: int
    n_b: int
    folds: int
    repeats: int


def embedding_separability(a_emb: np.ndarray, b_emb: np.ndarray, *, seed: int = 0,
                           ratio: int = 4) -> EmbeddingSeparability | None:
    """Repeated stratified CV AUC of a logistic regression telling set a (subsampled to at most
    `ratio` x |b| rows) from set b on embeddings; None with fewer than 10 rows on a side."""
    rng = np.random.default_rng(seed)
    ib = np.sort(rng.choice(len(b_emb), MAX_SIDE_ROWS, replace=False)) if len(b_emb) > MAX_SIDE_ROWS else np.arange(len(b_emb))
    k = min(len(ib) * ratio, MAX_ROWS_A)
    ia = np.sort(rng.choice(len(a_emb), k, replace=False)) if len(a_emb) > k else np.arange(len(a_emb))
    if len(ia) < MIN_ROWS_FOR_AUC or len(ib) < MIN_ROWS_FOR_AUC:
        return None
    X = np.vstack([a_emb[ia], b_emb[ib]])
    y = np.r_[np.zeros(len(ia), int), np.ones(len(ib), int)]
    folds = int(min(5, len(ib), len(ia)))
    repeats = 5 if len(ib) < 100 else (2 if len(ib) < 300 else 1)
    aucs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for tr, te in RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed).split(X, y):
            model = LogisticRegression(C=1.0, max_iter=500, class_weight="balanced").fit(X[tr], y[tr])
            aucs.append(float(roc_auc_score(y[te], model.decision_function(X[te]))))
    return EmbeddingSeparability(float(np.mean(aucs)), float(np.std(aucs)), len(ia), len(ib), folds, repeats)


@dataclass
class PilotScore:
    n: int
    accuracy: float
    macro_f1: float


@dataclass
class EncoderPilot:
    """A logistic regression on frozen sentence embeddings, scored like the TF-IDF pilot."""

    scores: dict[str, PilotScore]
    fitted_rows: int
    model: str = "logistic regression on frozen all-MiniLM-L6-v2 embeddings"


def _score(model: LogisticRegression, X: np.ndarray, y: list[str]) -> PilotScore:
    pred = model.predict(X).tolist()
    acc = float(np.mean([p == t for p, t in zip(pred, y, strict=True)]))
    f1 = float(f1_score(y, pred, labels=sorted(set(y)), average="macro", zero_division=0))
    return PilotScore(len(y), round(acc, 4), round(f1, 4))


def encoder_pilot(train_emb: np.ndarray, train_labels: Sequence[Any],
                  sets: Mapping[str, tuple[np.ndarray, Sequence[Any]]], *, seed: int = 0,
                  held_out: np.ndarray | None = None, max_fit_rows: int = MAX_FIT_ROWS) -> EncoderPilot | None:
    """Fit on the training rows not in `held_out` (positions; default: a stratified 20% split with
    `seed`, the same split `pilot_gap` makes) - at most `max_fit_rows` of them, a uniform sample that
    keeps every label - and score on the held-out rows and on each named set (labels the training set
    does not know are left out). None with fewer than two labels."""
    y = _label_list(train_labels, len(train_emb))
    have = np.array([v is not None for v in y])
    pos = np.flatnonzero(have)
    labels = [str(y[i]) for i in pos]
    if len(set(labels)) < 2:
        return None
    if held_out is None:
        counts = np.unique(labels, return_counts=True)[1]
        strat = labels if counts.min() >= 2 and len(labels) * HELD_OUT_SHARE >= len(counts) else None
        _, ho = train_test_split(np.arange(len(pos)), test_size=HELD_OUT_SHARE, random_state=seed, stratify=strat)
        held_out = pos[ho]
    mask = np.zeros(len(train_emb), dtype=bool)
    mask[held_out] = True
    fit = np.flatnonzero(have & ~mask)
    if len(fit) > max_fit_rows:
        keep = np.random.default_rng(seed).random(len(fit)) < max_fit_rows / len(fit)
        keep[np.unique(np.array([str(y[i]) for i in fit], dtype=object), return_index=True)[1]] = True
        fit = fit[keep]
    fit_y = [str(y[i]) for i in fit]
    if len(set(fit_y)) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(C=PILOT_C, max_iter=1000).fit(train_emb[fit], fit_y)
    known = set(fit_y)
    ho = np.flatnonzero(have & mask)
    scores = {"held_out": _score(model, train_emb[ho], [str(y[i]) for i in ho])} if len(ho) else {}
    for name, (emb, labs) in sets.items():
        lab = _label_list(labs, len(emb))
        scoreable = [i for i, v in enumerate(lab) if v in known]
        if scoreable:
            scores[name] = _score(model, emb[scoreable], [str(lab[i]) for i in scoreable])
    return EncoderPilot(scores=scores, fitted_rows=len(fit))
