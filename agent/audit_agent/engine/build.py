"""Driver side of a partitioned audit: read the split into the engine, run the stages, and collect
what the checks read (per-row integers, pairs, per-row label-issue signals) into `EngineResults`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from audit_agent.config import AuditConfig
from audit_agent.engine import oof as eoof
from audit_agent.engine.base import Engine, Window
from audit_agent.engine.features import EngineNeighbors, EngineOOF
from audit_agent.engine.near_stage import near_pairs
from audit_agent.engine.scan import ScanPart, codes_of, scan_partition
from audit_agent.features.classifier import (
    LARGE_FOLDS,
    LARGE_ROWS,
    MAX_TRAIN_ROWS,
    TEMPERATURE_ROWS,
    _assign_folds,
    _cap,
    fit_temperature,
)
from audit_agent.features.label_signals import (
    CLEANLAB_MAX_ROWS,
    KNN_K,
    KNN_TEMPERATURE,
    MAX_CANDIDATES,
    LabelIssues,
    _cleanlab_flags,
)

Progress = Callable[[str], None]
FEATURE_CACHE_ROWS = 2_000_000  # up to this many rows the scoring pass's features stay in the store for the kNN pass


@dataclass
class Partitions:
    """The training split as the engine holds it: one stored table per partition, its first row's
    position, and the refs of its scan results."""

    refs: list[Any] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    scans: list[Any] = field(default_factory=list)
    normalized: list[Any] = field(default_factory=list)

    def bounds(self, p: int) -> tuple[int, int]:
        return self.starts[p], self.starts[p] + self.sizes[p]


@dataclass
class EngineResults:
    """Everything the engine computed for the checks."""

    neighbors: EngineNeighbors
    opening: pd.Categorical
    ending: pd.Categorical
    oof: EngineOOF | None = None
    issues: LabelIssues | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)  # stage -> wall-clock start (epoch seconds)


def add_partition(engine: Engine, parts: Partitions, frame: pd.DataFrame, config: AuditConfig, large: bool) -> None:
    """Store one partition in the engine and start its scan at once (reading and scanning overlap)."""
    cols = [c for c in ("text", "label") if c in frame.columns]
    ref = engine.put(frame[cols].reset_index(drop=True))
    parts.refs.append(ref)
    parts.starts.append(sum(parts.sizes))
    parts.sizes.append(len(frame))
    scan, normalized = engine.submit(scan_partition, ref, config.checks.opening_words, large, outputs=2)
    parts.scans.append(scan)
    parts.normalized.append(normalized)


def compute(engine: Engine, parts: Partitions, config: AuditConfig, labels: pd.Series | None, classification: bool,
            others: dict[str, list[str]], progress: Progress, large_rows: int = LARGE_ROWS) -> EngineResults:
    """Run the stages on the stored partitions; `others` holds the eval/real texts to look up. Up to
    `large_rows` rows the classifier is left to the driver (the local TF-IDF path: small data)."""
    seconds: dict[str, float] = {}
    started = {"scan": time.time()}
    t0 = time.perf_counter()
    scans: list[ScanPart] = engine.get(parts.scans)
    parts.scans = []  # fetched: the store may free them
    h1 = np.concatenate([s.h1 for s in scans])
    h2 = np.concatenate([s.h2 for s in scans])
    codes, first = codes_of(h1, h2)
    h1_first, h2_first = h1[first], h2[first]
    del h1, h2
    opening = pd.api.types.union_categoricals([s.opening for s in scans])
    ending = pd.api.types.union_categoricals([s.ending for s in scans])
    df: list[np.ndarray] = [np.sum([s.df[p] for s in scans], axis=0) for p in range(len(scans[0].df))]
    del scans
    seconds["scan"] = time.perf_counter() - t0
    progress("near-duplicate pairs (band shuffle)")
    started["near_duplicates"] = time.time()
    t0 = time.perf_counter()
    neighbors = near_pairs(engine, parts, config, codes, first, (h1_first, h2_first), others)
    seconds["near_duplicates"] = time.perf_counter() - t0
    res = EngineResults(neighbors=neighbors, opening=opening, ending=ending, seconds=seconds, started=started)
    n = len(codes)
    if classification and labels is not None and n > large_rows and labels.notna().any():
        progress("out-of-fold classifier (per fold, over partitions)")
        started["out_of_fold"] = time.time()
        t0 = time.perf_counter()
        res.oof, res.issues = _out_of_fold(engine, parts, config, labels, df)
        seconds["out_of_fold"] = time.perf_counter() - t0
    return res


def _out_of_fold(engine: Engine, parts: Partitions, config: AuditConfig, labels: pd.Series,
                 df: list[np.ndarray]) -> tuple[EngineOOF, LabelIssues]:
    start = time.perf_counter()
    seed = config.seed
    classes = sorted(labels.dropna().astype(str).unique().tolist())
    k = len(classes)
    given = np.full(len(labels), -1, dtype=np.int64)
    present = labels.notna().to_numpy()
    given[present] = pd.Categorical(labels[present].astype(str), categories=classes).codes.astype(np.int64)
    n = len(given)
    n_labelled = int(present.sum())
    folds = max(2, min(config.checks.cv_folds, n_labelled))
    if n_labelled * (LARGE_FOLDS - 1) / LARGE_FOLDS >= MAX_TRAIN_ROWS:
        folds = min(folds, LARGE_FOLDS)
    fold, notes = _assign_folds(given, folds, seed)
    notes.append(f"{n} rows: hashed word+char features and an SGD-trained linear SVM, {folds} folds, each fitted "
                 f"on at most {MAX_TRAIN_ROWS} rows (over {len(parts.refs)} partitions)")
    idf = [(np.log((1.0 + n) / (1.0 + d)) + 1.0).astype(np.float32) for d in df]
    idf_ref = engine.put(idf)
    rng = np.random.default_rng(seed)
    train_sets = []
    for f in range(folds):
        train = np.flatnonzero((fold != f) & (given >= 0))
        if np.any(fold == f):
            train_sets.append((f, _cap(train, given, MAX_TRAIN_ROWS, rng)))
    labelled = np.flatnonzero(given >= 0)
    temp_rows = labelled
    if len(labelled) > TEMPERATURE_ROWS:
        temp_rows = np.random.default_rng(0).choice(labelled, TEMPERATURE_ROWS, replace=False)
    wanted = np.unique(np.concatenate([*[t for _, t in train_sets], temp_rows]))
    X_wanted = _gather(engine, parts, wanted, idf_ref)
    models: list[eoof.FoldModel] = [eoof.FoldModel(prior=np.zeros(k, np.float32)) for _ in range(folds)]
    fits = {f: engine.submit(eoof.fit_fold, X_wanted[np.searchsorted(wanted, t)], given[t], k, seed)
            for f, t in train_sets}
    for f, ref in fits.items():
        models[f] = engine.get(ref)
    temp_scores = eoof.score_matrix(X_wanted[np.searchsorted(wanted, temp_rows)], fold[temp_rows], models, k)
    temperature = fit_temperature(temp_scores, given[temp_rows])
    del X_wanted, temp_scores
    keep = labelled
    if len(labelled) > CLEANLAB_MAX_ROWS:
        keep = np.sort(np.random.default_rng(0).choice(labelled, CLEANLAB_MAX_ROWS, replace=False))
    models_ref = engine.put(models)
    scored = []
    window = Window(engine)
    for p in range(len(parts.refs)):
        lo, hi = parts.bounds(p)
        local_keep = keep[(keep >= lo) & (keep < hi)] - lo
        scored.append(window.submit(eoof.score_partition, parts.refs[p], fold[lo:hi], given[lo:hi], models_ref,
                                    idf_ref, k, temperature, local_keep, n <= FEATURE_CACHE_ROWS, outputs=2))
    cols: dict[str, list[np.ndarray]] = {}
    features = [ref[1] for ref in scored]
    for ref in scored:
        for key, value in engine.get(ref[0]).items():
            cols.setdefault(key, []).append(value)
    out = {key: np.concatenate(v) for key, v in cols.items()}
    oof = EngineOOF(classes=classes, given=given, predicted=out["predicted"], p_predicted=out["p_predicted"],
                    temperature=temperature, fold=fold, notes=notes)
    issues = _label_issues(engine, parts, features, given, out, keep, idf_ref)
    oof.seconds = time.perf_counter() - start
    return oof, issues


def _gather(engine: Engine, parts: Partitions, rows: np.ndarray, idf_ref: Any) -> Any:
    """Hashed features of the rows at global positions `rows` (ascending), fetched from the partitions."""
    import scipy.sparse as sp

    pieces = []
    window = Window(engine)
    for p in range(len(parts.refs)):
        lo, hi = parts.bounds(p)
        local = rows[(rows >= lo) & (rows < hi)] - lo
        if len(local):
            pieces.append(window.submit(eoof.gather_rows, parts.refs[p], local, idf_ref))
    return sp.vstack(engine.get(pieces), format="csr")


def _label_issues(engine: Engine, parts: Partitions, features: list[Any], given: np.ndarray,
                  out: dict[str, np.ndarray], keep: np.ndarray, idf_ref: Any) -> LabelIssues:
    """`detect_label_issues` from the per-row results: the kNN vote over partitions, cleanlab on the
    same (capped) rows the local path gives it."""
    p_given, suggested = out["p_given"], out["suggested"]
    n = len(given)
    p_knn = np.zeros(n)
    cand = np.flatnonzero((given >= 0) & (p_given < 0.5))
    if len(cand) > MAX_CANDIDATES:
        cand = cand[np.argsort(p_given[cand], kind="stable")[:MAX_CANDIDATES]]
    if len(cand):
        order = np.argsort(cand, kind="stable")
        sorted_cand = cand[order]
        X_sorted = _gather(engine, parts, sorted_cand, idf_ref)
        X_cand = X_sorted[np.argsort(order, kind="stable")]
        cand_ref = engine.put(X_cand)
        classes = [given[cand], suggested[cand]]
        window = Window(engine)
        refs = [window.submit(eoof.knn_partition, parts.refs[p], features[p], parts.starts[p],
                              given[slice(*parts.bounds(p))], cand_ref, cand, classes, idf_ref, KNN_K)
                for p in range(len(parts.refs))]
        tops = engine.get(refs)
        sim_given = eoof.merge_knn([t[0] for t in tops], KNN_K)
        sim_sugg = eoof.merge_knn([t[1] for t in tops], KNN_K)
        p_knn[cand] = 1.0 / (1.0 + np.exp(-(sim_sugg - sim_given) / KNN_TEMPERATURE))
    score = np.where(given >= 0, 0.5 * (1.0 - p_given) + 0.5 * p_knn, 0.0)
    cleanlab = np.zeros(n, dtype=bool)
    sample = _Sample(given=given[keep], probs=out["kept"])
    cleanlab[keep[_cleanlab_flags(sample)]] = True  # type: ignore[arg-type]
    return LabelIssues(score=score, flagged=score >= 1.0, suggested=suggested, p_given=p_given,
                       p_suggested=out["p_suggested"], p_knn=p_knn, cleanlab=cleanlab, threshold=1.0)


@dataclass
class _Sample:
    """The rows cleanlab sees, shaped as the `OOFResult` `_cleanlab_flags` reads."""

    given: np.ndarray
    probs: np.ndarray

    @property
    def labelled(self) -> np.ndarray:
        return self.given >= 0
