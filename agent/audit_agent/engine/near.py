"""Near-duplicate pairs as a shuffle by LSH band key: the partitioned form of `NeighborIndex.build`
(same signatures, band keys, bucket pairing, filters and similarity, so the same pairs).

1. `sketch_block` (one task per partition): MinHash signatures and band keys of the distinct texts
   whose first row is in that partition; records (band key, text code) leave in one piece per
   reducer (by key); the block's token table (tokens.py: each text tokenised once, here), its word
   document frequencies and its signatures stay in the store.
2. `bucket_pairs` (one task per reducer): records sorted by (key, code); each text is paired with the
   next `_BUCKET_SPAN` texts of its bucket, as `_bucket_pairs` does; eval/real texts (queries) take
   the first `_BUCKET_SPAN` texts of each bucket they fall in, as `NeighborIndex.query` does.
   Candidate pairs (u < v) leave in one piece per partition of u, for pairs.py's routers.
3. pairs.py: pairs deduplicated and routed by the pair of partitions they join, each (a, b) verified
   with a's and b's token tables only. `verify_queries` scores the eval/real candidates.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from audit_agent.engine.tokens import TokenTable, join_rows, token_table
from audit_agent.features.neighbors import _BUCKET_SPAN, Sketcher
from audit_agent.features.word_similarity import WordTable, pair_similarities

PLAUSIBLE_PERMS = 64  # `_plausible` compares the first 64 signature values
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _dest(values: np.ndarray, buckets: int) -> np.ndarray:
    """A bucket for every uint64 value (mixed, so structured values spread evenly)."""
    return ((values.astype(np.uint64) * _MIX) >> np.uint64(40)).astype(np.int64) % buckets


def block_of(codes: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The partition whose block holds each text code (`starts`: first code of every block)."""
    return np.searchsorted(starts, codes, side="right") - 1


def sketcher(params: dict[str, Any], perms: int | None = None) -> Sketcher:
    sk = Sketcher(params["num_perm"], params["seed"], candidate_threshold=params["candidate_threshold"])
    if perms is not None:  # the first `perms` permutations give the first `perms` signature values
        sk.num_perm, sk.perm_a, sk.perm_b = perms, sk.perm_a[:perms], sk.perm_b[:perms]
    return sk


def sketch_block(normalized: list[str], first_rows: np.ndarray, code_start: int,
                 params: dict[str, Any]) -> list[Any]:
    """[one (keys, codes) piece per reducer..., the block's token table, its (word hashes, document
    counts), the first PLAUSIBLE_PERMS signature values of each of its texts (for the verifiers)]."""
    texts = [normalized[i] for i in first_rows.tolist()]
    sk = sketcher(params)
    sig, has = sk.signatures(texts)
    keys = sk.band_keys(sig)[has]
    codes = np.repeat(np.arange(code_start, code_start + len(texts), dtype=np.int64)[has], keys.shape[1])
    flat = keys.ravel()
    dest = _dest(flat, params["reducers"])
    order = np.argsort(dest, kind="stable")  # one pass instead of one mask per reducer
    bounds = np.searchsorted(dest[order], np.arange(params["reducers"] + 1))
    flat, codes = flat[order], codes[order].astype(np.int32 if code_start + len(texts) < 2**31 else np.int64)
    pieces: list[Any] = [(flat[a:b], codes[a:b]) for a, b in itertools.pairwise(bounds)]
    table = token_table(texts)
    return [*pieces, table, table.doc_freq(), np.ascontiguousarray(sig[:, :PLAUSIBLE_PERMS])]


def query_records(texts: list[str], params: dict[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Band keys of query texts (eval/real) split by reducer, as (keys, query index) pieces."""
    sk = sketcher(params)
    sig, has = sk.signatures(texts)
    keys = sk.band_keys(sig)[has]
    ids = np.repeat(np.flatnonzero(has).astype(np.int64), keys.shape[1])
    flat = keys.ravel()
    dest = _dest(flat, params["reducers"])
    return [(flat[dest == r], ids[dest == r]) for r in range(params["reducers"])]


def bucket_pairs(params: dict[str, Any], queries: tuple[np.ndarray, np.ndarray] | None, *pieces: Any) -> list[Any]:
    """[candidate pairs (u * n_unique + v, u < v) with u in partition a, for every partition a...,
    query candidates (query index, code)]."""
    n_unique = np.int64(params["n_unique"])
    starts = np.asarray(params["code_starts"])
    keys = np.concatenate([p[0] for p in pieces]) if pieces else np.zeros(0, np.uint64)
    codes = np.concatenate([p[1] for p in pieces]).astype(np.int64) if pieces else np.zeros(0, np.int64)
    order = np.lexsort((codes, keys))
    keys, codes = keys[order], codes[order]
    del order
    found = []
    for step in range(1, _BUCKET_SPAN + 1):
        same = np.flatnonzero(keys[step:] == keys[:-step])
        if len(same) == 0:
            break
        found.append(codes[same] * n_unique + codes[same + step])
    flat = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)
    del found
    bounds = np.searchsorted(flat, starts * n_unique)  # sorted by u, so each partition's pairs are a run
    bounds = np.append(bounds, len(flat))
    out: list[Any] = [flat[bounds[a]:bounds[a + 1]].copy() for a in range(len(starts))]
    q_ids, q_codes = [], []
    if queries is not None and len(queries[0]):
        left = np.searchsorted(keys, queries[0], side="left")
        right = np.searchsorted(keys, queries[0], side="right")
        for step in range(_BUCKET_SPAN):
            hit = left + step < right
            if not hit.any():
                break
            q_ids.append(queries[1][hit])
            q_codes.append(codes[left[hit] + step])
    out.append((np.concatenate(q_ids) if q_ids else np.zeros(0, np.int64),
                np.concatenate(q_codes) if q_codes else np.zeros(0, np.int64)))
    return out


def verify_queries(params: dict[str, Any], doc_freq: tuple[np.ndarray, np.ndarray], queries: list[str],
                   q_ids: np.ndarray, q_codes: np.ndarray,
                   *tables: TokenTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query index, code, similarity) of the query candidates at or above the threshold, with
    `NeighborIndex.query`'s word-weight bound and similarity (identical texts score 1.0). The training
    texts come from the token tables of their partitions; the queries are tokenised here."""
    if len(q_ids) == 0:
        return q_ids, q_codes, np.zeros(0)
    n_unique = np.int64(params["n_unique"])
    starts = np.asarray(params["code_starts"])
    flat = np.unique(q_ids.astype(np.int64) * n_unique + q_codes)
    o, m = flat // n_unique, flat % n_unique
    involved = np.unique(m)
    where = block_of(involved, starts)
    nq = len(queries)
    parts = [(token_table(queries), np.arange(nq))]
    parts += [(tables[b], involved[where == b] - starts[b]) for b in np.unique(where).tolist()]
    table = join_rows(parts, doc_freq, params["n_unique"])
    train_texts = list(table.texts[nq:])
    left = WordTable(queries, table.words, table.weights, table.counts[:nq], table.word_weights)
    right = WordTable(train_texts, table.words, table.weights, table.counts[nq:], table.word_weights)
    mi = np.searchsorted(involved, m)
    lt, rt = left.totals(), right.totals()
    bound = np.minimum(lt[o], rt[mi]) >= params["threshold"] * np.maximum(lt[o], rt[mi])
    o, m, mi = o[bound], m[bound], mi[bound]
    sims = pair_similarities(left, right, o, mi)
    same = np.array([queries[a] == train_texts[b] for a, b in zip(o.tolist(), mi.tolist(), strict=True)], dtype=bool)
    sims[same] = 1.0
    keep = sims >= params["threshold"]
    return o[keep], m[keep], sims[keep]
