"""Nearest neighbours of L2-normalised vectors by cosine similarity.

Up to `EXACT_MAX_ROWS` reference rows the search is exact (blocked matrix products, top-k by
partial sort). Above that it goes through faiss's inverted-file index (IndexIVFFlat, inner
product; about 4 * sqrt(n) k-means cells trained on a seeded sample, `NPROBE` cells searched per
query), which does not compare all pairs: measured against the exact search and HNSW in
bench/embed_speed.py --index. Without faiss installed the exact search is used at every size.
"""

from __future__ import annotations

import importlib.util
import math
import os

import numpy as np

EXACT_MAX_ROWS = 30_000
BLOCK = 2048
NPROBE = 24
TRAIN_PER_CELL = 40


def _exact(ref: np.ndarray, queries: np.ndarray, k: int, skip_self: bool) -> tuple[np.ndarray, np.ndarray]:
    n_q = len(queries)
    idx = np.zeros((n_q, k), dtype=np.int64)
    sim = np.zeros((n_q, k), dtype=np.float32)
    for start in range(0, n_q, BLOCK):
        block = queries[start:start + BLOCK] @ ref.T
        if skip_self:
            rows = np.arange(len(block))
            block[rows, rows + start] = -np.inf
        top = np.argpartition(-block, k - 1, axis=1)[:, :k] if k < block.shape[1] else \
            np.tile(np.arange(block.shape[1]), (len(block), 1))
        vals = np.take_along_axis(block, top, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")
        idx[start:start + len(block)] = np.take_along_axis(top, order, axis=1)
        sim[start:start + len(block)] = np.take_along_axis(vals, order, axis=1)
    return idx, sim


def _ivf(ref: np.ndarray, queries: np.ndarray, k: int, skip_self: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    faiss.omp_set_num_threads(min(2, os.cpu_count() or 1))  # more threads than cores stall under load
    n, d = ref.shape
    cells = max(1, min(int(4 * math.sqrt(n)), n // TRAIN_PER_CELL))
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, cells, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    sample = ref[rng.choice(n, size=min(n, cells * TRAIN_PER_CELL), replace=False)]
    index.cp.seed = seed
    index.train(np.ascontiguousarray(sample))
    index.add(np.ascontiguousarray(ref))
    index.nprobe = min(NPROBE, cells)
    extra = 1 if skip_self else 0
    sim, idx = index.search(np.ascontiguousarray(queries), k + extra)
    if skip_self:  # drop the row itself (normally first; absent when another vector ties with it)
        own = idx == np.arange(len(queries))[:, None]
        drop = np.where(own.any(axis=1), own.argmax(axis=1), k)
        keep = np.ones_like(own)
        keep[np.arange(len(queries)), drop] = False
        idx = idx[keep].reshape(len(queries), k)
        sim = sim[keep].reshape(len(queries), k)
    return idx.astype(np.int64), sim.astype(np.float32)


def has_faiss() -> bool:
    return importlib.util.find_spec("faiss") is not None


def knn(ref: np.ndarray, k: int, queries: np.ndarray | None = None, *, exact_max_rows: int = EXACT_MAX_ROWS,
        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cosine similarities) of the `k` nearest `ref` rows of every query, best first.
    Without `queries` every `ref` row queries the others (itself excluded). Rows of `idx` whose
    neighbour could not be found (fewer than k rows) hold -1 with similarity -inf."""
    ref = np.ascontiguousarray(ref, dtype=np.float32)
    skip_self = queries is None
    q = ref if queries is None else np.ascontiguousarray(queries, dtype=np.float32)
    available = len(ref) - (1 if skip_self else 0)
    kk = min(k, max(available, 0))
    if kk <= 0 or len(q) == 0:
        return np.full((len(q), k), -1, dtype=np.int64), np.full((len(q), k), -np.inf, dtype=np.float32)
    if len(ref) > exact_max_rows and has_faiss():
        idx, sim = _ivf(ref, q, kk, skip_self, seed)
    else:
        idx, sim = _exact(ref, q, kk, skip_self)
    if kk < k:
        idx = np.hstack([idx, np.full((len(q), k - kk), -1, dtype=np.int64)])
        sim = np.hstack([sim, np.full((len(q), k - kk), -np.inf, dtype=np.float32)])
    sim[idx < 0] = -np.inf
    return idx, sim
