"""Near-duplicate pairs as a shuffle by LSH band key: the partitioned form of `NeighborIndex.build`
(same signatures, band keys, bucket pairing, filters and similarity, so the same pairs).

1. `sketch_block` (one task per partition): MinHash signatures and band keys of the distinct texts
   whose first row is in that partition; records (band key, text code) leave in one piece per
   reducer (by key); the block's texts and word document frequencies stay in the store.
2. `bucket_pairs` (one task per reducer): records sorted by (key, code); each text is paired with the
   next `_BUCKET_SPAN` texts of its bucket, as `_bucket_pairs` does; eval/real texts (queries) take
   the first `_BUCKET_SPAN` texts of each bucket they fall in, as `NeighborIndex.query` does.
   Candidate pairs leave deduplicated, in one piece per verifier (by pair).
3. `verify_pairs` (one task per verifier): the MinHash and word-weight filters (`_plausible`) and
   the exact weighted word similarity (`pair_similarities`) with word weights from all distinct
   texts; pairs at or above the threshold go to the driver.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from audit_agent.features.neighbors import _BUCKET_SPAN, Sketcher, _plausible
from audit_agent.features.word_similarity import (
    WordTable,
    WordWeights,
    _count_matrix,
    pair_similarities,
)

PLAUSIBLE_PERMS = 64  # `_plausible` compares the first 64 signature values
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _dest(values: np.ndarray, buckets: int) -> np.ndarray:
    """A bucket for every uint64 value (mixed, so structured values spread evenly)."""
    return ((values.astype(np.uint64) * _MIX) >> np.uint64(40)).astype(np.int64) % buckets


def sketcher(params: dict[str, Any], perms: int | None = None) -> Sketcher:
    sk = Sketcher(params["num_perm"], params["seed"], candidate_threshold=params["candidate_threshold"])
    if perms is not None:  # the first `perms` permutations give the first `perms` signature values
        sk.num_perm, sk.perm_a, sk.perm_b = perms, sk.perm_a[:perms], sk.perm_b[:perms]
    return sk


def sketch_block(normalized: list[str], first_rows: np.ndarray, code_start: int,
                 params: dict[str, Any]) -> list[Any]:
    """[one (keys, codes) piece per reducer..., the block's distinct texts, (words, document counts),
    the first PLAUSIBLE_PERMS signature values of each of its texts (for the verifiers)]."""
    texts = [normalized[i] for i in first_rows.tolist()]
    sk = sketcher(params)
    sig, has = sk.signatures(texts)
    keys = sk.band_keys(sig)[has]
    codes = np.repeat(np.arange(code_start, code_start + len(texts), dtype=np.int64)[has], keys.shape[1])
    flat = keys.ravel()
    dest = _dest(flat, params["reducers"])
    pieces: list[Any] = [(flat[dest == r], codes[dest == r]) for r in range(params["reducers"])]
    owner, ids, words = _arrow_tokens(texts)
    once = np.unique(owner * np.int64(max(len(words), 1)) + ids) % max(len(words), 1)  # each word once per text
    df = np.bincount(once, minlength=len(words)).astype(np.int64)
    return [*pieces, pa.array(texts, type=pa.string()), (words, df),
            np.ascontiguousarray(sig[:, :PLAUSIBLE_PERMS])]


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
    """[one candidate piece per verifier..., query candidates (query index, code)]."""
    n_unique = np.int64(params["n_unique"])
    keys = np.concatenate([p[0] for p in pieces]) if pieces else np.zeros(0, np.uint64)
    codes = np.concatenate([p[1] for p in pieces]) if pieces else np.zeros(0, np.int64)
    order = np.lexsort((codes, keys))
    keys, codes = keys[order], codes[order]
    found = []
    for step in range(1, _BUCKET_SPAN + 1):
        same = np.flatnonzero(keys[step:] == keys[:-step])
        if len(same) == 0:
            break
        found.append(codes[same] * n_unique + codes[same + step])
    flat = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)
    dest = _dest(flat.astype(np.uint64), params["verifiers"])
    out: list[Any] = [flat[dest == v] for v in range(params["verifiers"])]
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


def weighted_table(texts: list[str], doc_freq: pd.Series, n_texts: int) -> WordTable:
    """`WordTable` of `texts` with the word weights of all distinct texts (`doc_freq`: word -> how many
    distinct texts use it); words no indexed text uses get the unseen weight."""
    owner, ids, words = _arrow_tokens(texts)
    counts = _count_matrix(owner, ids, len(texts), len(words))
    df = doc_freq.reindex(pd.Index(words, dtype=object)).fillna(0).to_numpy(np.float64)
    weights = np.sqrt(np.log((n_texts + 1) / (df + 1)) + 1)
    known = df > 0
    word_list = np.asarray(words, dtype=object)
    ww = WordWeights(weights=dict(zip(word_list[known].tolist(), weights[known].tolist(), strict=True)),
                     n_texts=n_texts)
    weights[~known] = ww.unseen
    return WordTable(texts, word_list, weights, counts, ww)


def _arrow_tokens(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(owner text, word id, vocabulary) of every space-separated token of normalised texts (single
    spaces, as `normalize` leaves them), tokenised by Arrow: no Python string per token, which is
    what bounds a verifier's memory."""
    arr = pa.array(texts, type=pa.string())
    split = pc.split_pattern(arr, " ")
    owner = pc.list_parent_indices(split).to_numpy()
    flat = pc.list_flatten(split)
    keep = pc.not_equal(pc.utf8_length(flat), 0)  # an empty text has one empty token
    owner, flat = owner[keep.to_numpy(zero_copy_only=False)], flat.filter(keep)
    encoded = pc.dictionary_encode(flat).combine_chunks() if isinstance(flat, pa.ChunkedArray) else \
        pc.dictionary_encode(flat)
    return (owner.astype(np.int64), encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64),
            np.asarray(encoded.dictionary.to_pylist(), dtype=object))


def _texts_of(blocks: tuple[Any, ...], codes: np.ndarray) -> list[str]:
    return pa.chunked_array(list(blocks), type=pa.string()).take(pa.array(codes)).to_pylist()


def _sig_rows(sig_blocks: tuple[Any, ...], starts: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Signature rows of the texts `codes` (ascending), taken block by block (no copy of all blocks)."""
    out = np.empty((len(codes), PLAUSIBLE_PERMS), dtype=np.uint32)
    where = np.searchsorted(starts, codes, side="right") - 1
    for b in np.unique(where).tolist():
        sel = np.flatnonzero(where == b)
        out[sel] = sig_blocks[b][codes[sel] - starts[b]]
    return out


def verify_pairs(params: dict[str, Any], doc_freq: pd.Series, n_pieces: int, *args: Any) -> tuple[np.ndarray, ...]:
    """(u, v, similarity) of the candidate pairs of this verifier at or above the threshold; args are
    the candidate pieces, then the text blocks, then the signature blocks."""
    pieces, rest = args[:n_pieces], args[n_pieces:]
    blocks, sig_blocks = rest[:len(rest) // 2], rest[len(rest) // 2:]
    n_unique = np.int64(params["n_unique"])
    flat = np.unique(np.concatenate(pieces)) if pieces else np.zeros(0, np.int64)
    empty = np.zeros(0, np.int64)
    if len(flat) == 0:
        return empty, empty, np.zeros(0)
    u, v = flat // n_unique, flat % n_unique
    involved = np.unique(np.concatenate([u, v]))
    texts = _texts_of(blocks, involved)
    starts = np.cumsum([0, *[len(b) for b in blocks[:-1]]])
    sig = _sig_rows(sig_blocks, starts, involved)
    table = weighted_table(texts, doc_freq, params["n_unique"])
    local = np.vstack([np.searchsorted(involved, u), np.searchsorted(involved, v)])
    local = _plausible(sig, table.totals(), local, params["threshold"])
    sims = pair_similarities(table, table, local[0], local[1])
    keep = sims >= params["threshold"]
    return involved[local[0][keep]], involved[local[1][keep]], sims[keep]


def verify_queries(params: dict[str, Any], doc_freq: pd.Series, queries: list[str], q_ids: np.ndarray,
                   q_codes: np.ndarray, *blocks: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query index, code, similarity) of the query candidates at or above the threshold, with
    `NeighborIndex.query`'s word-weight bound and similarity (identical texts score 1.0)."""
    if len(q_ids) == 0:
        return q_ids, q_codes, np.zeros(0)
    flat = np.unique(q_ids.astype(np.int64) * np.int64(params["n_unique"]) + q_codes)
    o, m = flat // params["n_unique"], flat % params["n_unique"]
    involved = np.unique(m)
    train_texts = _texts_of(blocks, involved)
    table = weighted_table([*queries, *train_texts], doc_freq, params["n_unique"])
    nq = len(queries)
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
