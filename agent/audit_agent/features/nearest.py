"""The most similar rows of a few query rows among all rows: cosine over character n-gram TF-IDF.

Used to show a reviewer the neighbours of each sampled row, whatever their label (a neighbour with
another label is what makes inconsistent labelling visible). Queries are scored in blocks, so memory
stays at `block x len(texts)` floats however many rows there are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

_BLOCK = 64  # query rows scored at once


def nearest_rows(texts: Sequence[str], queries: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
    """For every position in `queries`, up to `k` other positions of `texts` with their cosine
    similarity (rounded to 4 places), most similar first; rows with no shared n-gram are left out.
    Identical texts at other positions count as neighbours (similarity 1)."""
    if k <= 0 or not queries:
        return [[] for _ in queries]
    vectors = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True,
                              dtype=np.float32).fit_transform(list(texts)).tocsr()
    transposed = vectors.T.tocsc()
    out: list[list[tuple[int, float]]] = []
    query_array = np.asarray(queries, dtype=np.int64)
    for start in range(0, len(query_array), _BLOCK):
        block = query_array[start:start + _BLOCK]
        sims = (vectors[block] @ transposed).toarray()
        sims[np.arange(len(block)), block] = -1.0
        take = min(k, sims.shape[1] - 1)
        if take <= 0:
            out += [[] for _ in block]
            continue
        top = np.argpartition(-sims, take - 1, axis=1)[:, :take]
        for row, cols in zip(sims, top, strict=True):
            ranked = sorted(cols.tolist(), key=lambda c: (-row[c], c))
            out.append([(int(c), round(float(row[c]), 4)) for c in ranked if row[c] > 0])
    return out
