"""Candidate pairs routed by the pair of partitions they join, verified with those two partitions'
token tables only.

Text codes are numbered by first appearance, so partition p's distinct texts are the codes
[starts[p], starts[p + 1]) and a pair u < v joins partitions a = block(u) <= b = block(v).
1. `route_pairs` (one task per partition a): a's candidate pairs from every reducer, deduplicated
   (several bands find the same pair), split by b: one piece per partition, and the piece sizes;
2. `verify_block_pair` (one task per non-empty (a, b)): the MinHash and word-weight filters
   (`_plausible`) and the exact weighted word similarity (`pair_similarities`) with word weights
   from all distinct texts, from a's and b's token tables and signatures. A verifier's memory is
   bounded by two partitions whatever the data size, and no text is tokenised again.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from audit_agent.engine.near import block_of
from audit_agent.engine.tokens import TokenTable, join_rows
from audit_agent.features.neighbors import _plausible
from audit_agent.features.word_similarity import pair_similarities


def route_pairs(params: dict[str, Any], *pieces: np.ndarray) -> list[Any]:
    """[the pairs joining this partition to partition b, for every b..., the number in each]."""
    n_unique = np.int64(params["n_unique"])
    starts = np.asarray(params["code_starts"])
    flat = np.unique(np.concatenate(pieces)) if pieces else np.zeros(0, np.int64)
    where = block_of(flat % n_unique, starts)
    order = np.argsort(where, kind="stable")
    bounds = np.searchsorted(where[order], np.arange(len(starts) + 1))
    flat = flat[order]  # ascending within each piece (stable sort of an ascending array)
    return [*[flat[a:b] for a, b in itertools.pairwise(bounds)], np.diff(bounds)]


def verify_block_pair(params: dict[str, Any], doc_freq: tuple[np.ndarray, np.ndarray], flat: np.ndarray,
                      table_a: TokenTable, sig_a: np.ndarray, start_a: int, table_b: TokenTable | None = None,
                      sig_b: np.ndarray | None = None, start_b: int = 0) -> tuple[np.ndarray, ...]:
    """(u, v, similarity) of the pairs `flat` (u * n_unique + v) at or above the threshold, u in
    partition a (its token table, signatures and first code) and v in b (None: b is a)."""
    n_unique = np.int64(params["n_unique"])
    empty = np.zeros(0, np.int64)
    if len(flat) == 0:
        return empty, empty, np.zeros(0)
    u, v = flat // n_unique, flat % n_unique
    if table_b is None or sig_b is None:
        rows = np.unique(np.concatenate([u, v])) - start_a
        parts, sig, codes = [(table_a, rows)], sig_a[rows], rows + start_a
    else:
        rows_a, rows_b = np.unique(u) - start_a, np.unique(v) - start_b
        parts = [(table_a, rows_a), (table_b, rows_b)]
        sig = np.vstack([sig_a[rows_a], sig_b[rows_b]])
        codes = np.concatenate([rows_a + start_a, rows_b + start_b])  # ascending: a's codes come first
    table = join_rows(parts, doc_freq, params["n_unique"])
    local = np.vstack([np.searchsorted(codes, u), np.searchsorted(codes, v)])
    local = _plausible(sig, table.totals(), local, params["threshold"])
    sims = pair_similarities(table, table, local[0], local[1])
    keep = sims >= params["threshold"]
    return codes[local[0][keep]], codes[local[1][keep]], sims[keep]
