"""Binary document x phrase matrices (n-grams, openings) for phrase statistics over many rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse


@dataclass
class PhraseMatrix:
    """Binary rows x phrases matrix (CSC) and the text of each phrase column."""

    x: sparse.csc_matrix
    phrases: list[str] | None = None  # explicit phrase per column, or decoded from `tokens`
    tokens: np.ndarray | None = None  # flat token array of all docs
    spans: np.ndarray | None = None  # (n_cols, 2): start position in `tokens`, length

    def phrase(self, j: int) -> str:
        if self.phrases is not None:
            return self.phrases[j]
        assert self.tokens is not None and self.spans is not None
        start, length = self.spans[j]
        return " ".join(self.tokens[start:start + length])


def ngram_matrix(docs: list[str], max_n: int, min_df: int) -> PhraseMatrix:
    """Binary doc x n-gram (1..max_n words) matrix of the n-grams in >= min_df docs.

    Vectorised: tokens are factorised once, n-gram ids are built from (n-1)-gram ids with numpy,
    so there is no per-n-gram Python work (several times faster than CountVectorizer).
    """
    toks = [d.split() for d in docs]
    lengths = np.fromiter((len(t) for t in toks), dtype=np.int64, count=len(toks))
    flat = np.array([w for t in toks for w in t], dtype=object)
    ids, vocab = pd.factorize(flat)
    doc = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
    n_docs, total = len(docs), len(ids)
    blocks: list[sparse.csc_matrix] = []
    spans: list[np.ndarray] = []
    gram = ids.astype(np.int64)
    for n in range(1, max_n + 1):
        m = total - n + 1
        if m <= 0:
            break
        if n > 1:
            gram, _ = pd.factorize(gram[:m] * max(len(vocab), 1) + ids[n - 1:])
        valid = doc[:m] == doc[n - 1:]
        starts = np.flatnonzero(valid)
        g, d = gram[valid], doc[starts]
        n_grams = int(gram.max()) + 1 if gram.size else 0
        mat = sparse.csc_matrix((np.ones(len(g), dtype=np.int32), (d, g)), shape=(n_docs, n_grams))
        mat.sum_duplicates()
        keep = np.flatnonzero(np.diff(mat.indptr) >= min_df)
        if keep.size == 0:
            continue
        block = mat[:, keep]
        block.data[:] = 1
        first = np.full(n_grams, -1, dtype=np.int64)
        first[g[::-1]] = starts[::-1]
        blocks.append(block)
        spans.append(np.column_stack([first[keep], np.full(keep.size, n, dtype=np.int64)]))
    if not blocks:
        return PhraseMatrix(sparse.csc_matrix((n_docs, 0), dtype=np.int32), phrases=[])
    return PhraseMatrix(sparse.hstack(blocks, format="csc"), tokens=flat, spans=np.vstack(spans))
