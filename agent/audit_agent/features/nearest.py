"""The most similar rows of a few query rows among all rows: cosine over character n-gram TF-IDF.

Used to show a reviewer the neighbours of each sampled row, whatever their label (a neighbour with
another label is what makes inconsistent labelling visible).

Up to `EXACT_ROWS` rows every query is scored against every row. Above that, scoring against every
row costs queries x rows (minutes at 100,000 rows), so candidates come from the query's rare n-grams
only (those in at most `RARE_SHARE` of the rows: frequent n-grams weigh little under IDF and match
almost everything), and the best `CANDIDATES` of them are re-scored with the full vectors. The
similarities shown are always exact cosines; only the candidate search is approximate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

EXACT_ROWS = 20_000
RARE_SHARE = 0.03
CANDIDATES = 64
_BLOCK = 64  # query rows scored at once


def tfidf_vectors(texts: Sequence[str]) -> sp.csr_matrix:
    """L2-normalised character 2-4-gram (within words) TF-IDF vectors, one row per text."""
    return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True,
                           dtype=np.float32).fit_transform(list(texts)).tocsr()


def _top(scores: np.ndarray, cols: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The k best (column, score) pairs with a positive score, best first, ties by column."""
    keep = scores > 0
    scores, cols = scores[keep], cols[keep]
    if len(scores) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        scores, cols = scores[part], cols[part]
    order = np.lexsort((cols, -scores))
    return [(int(cols[i]), round(float(scores[i]), 4)) for i in order]


def _rare_only(X: sp.csr_matrix) -> sp.csr_matrix:
    """X without the n-grams that occur in more than RARE_SHARE of the rows."""
    df = np.bincount(X.indices, minlength=X.shape[1])
    rare = X.copy()
    rare.data[df[rare.indices] > max(2, RARE_SHARE * X.shape[0])] = 0
    rare.eliminate_zeros()
    return rare


def nearest_rows(texts: Sequence[str], queries: Sequence[int], k: int,
                 vectors: sp.csr_matrix | None = None) -> list[list[tuple[int, float]]]:
    """For every position in `queries`, up to `k` other positions of `texts` with their cosine
    similarity (rounded to 4 places), most similar first; rows with no shared n-gram are left out.
    Identical texts at other positions count as neighbours (similarity 1). `vectors` (one row per
    text, e.g. TF-IDF computed earlier in the run) replaces `tfidf_vectors(texts)`."""
    if k <= 0 or not queries:
        return [[] for _ in queries]
    X = normalize(vectors if vectors is not None else tfidf_vectors(texts), copy=True).tocsr()
    query_array = np.asarray(queries, dtype=np.int64)
    if X.shape[0] <= EXACT_ROWS:
        return _exact(X, query_array, k)
    search = _rare_only(X)
    transposed = search.T.tocsr()
    out: list[list[tuple[int, float]]] = []
    for start in range(0, len(query_array), _BLOCK):
        block = query_array[start:start + _BLOCK]
        scored = (search[block] @ transposed).tocsr()
        for i, q in enumerate(block):
            lo, hi = scored.indptr[i], scored.indptr[i + 1]
            cols, scores = scored.indices[lo:hi], scored.data[lo:hi].copy()
            scores[cols == q] = 0
            cands = np.array([c for c, _ in _top(scores, cols, CANDIDATES)], dtype=np.int64)
            full = (X[cands] @ X[int(q)].T).toarray().ravel() if len(cands) else np.zeros(0, np.float32)
            out.append(_top(full, cands, k))
    return out


def _exact(X: sp.csr_matrix, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """Every query against every row: sparse rows times a dense block of queries."""
    out: list[list[tuple[int, float]]] = []
    columns = np.arange(X.shape[0])
    for start in range(0, len(queries), _BLOCK):
        block = queries[start:start + _BLOCK]
        sims = np.asarray(X @ X[block].T.toarray()).T
        sims[np.arange(len(block)), block] = 0
        for row in sims:
            top = np.argpartition(-row, k)[:k + 1] if len(row) > k + 1 else columns
            out.append(_top(row[top], columns[top], k))
    return out
