"""Token tables: each partition's distinct texts tokenised once (in the sketch stage) into compact
arrays kept in the engine's store, joined per verifier into the `WordTable` the similarity reads.

A `TokenTable` holds, for a block of distinct texts, the word counts as CSR arrays over the block's
own vocabulary, that vocabulary (Arrow strings) and a 64-bit hash of every word. Word weights come
from document frequencies summed over all blocks by word hash (`merge_doc_freq`), so no process holds
a vocabulary of all words as Python strings. `join_rows` builds the `WordTable` of chosen rows of a
few tables: only their words become Python strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from audit_agent.engine.text_views import ArrowTexts
from audit_agent.features.word_similarity import WordTable, WordWeights, _count_matrix

WORD_KEY = "audit-agent-wd01"  # SipHash key of the word hashes


@dataclass
class TokenTable:
    """Word counts of a block of texts (CSR arrays, text x block word id) and the block's words."""

    texts: Any  # pa.StringArray: the block's texts
    indptr: np.ndarray  # int64, len(texts) + 1
    ids: np.ndarray  # int32 block word ids, per (text, distinct word)
    counts: np.ndarray  # int32 occurrences of that word in that text
    vocab: Any  # pa.StringArray: block word id -> word
    hashes: np.ndarray  # uint64 hash of every vocabulary word

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def matrix(self) -> sp.csr_matrix:
        return sp.csr_matrix((self.counts, self.ids, self.indptr), shape=(len(self), len(self.hashes)))

    def doc_freq(self) -> tuple[np.ndarray, np.ndarray]:
        """(word hashes, how many of the block's texts use each word)."""
        return self.hashes, np.bincount(self.ids, minlength=len(self.hashes)).astype(np.int64)


def word_hashes(words: np.ndarray) -> np.ndarray:
    return pd.util.hash_array(np.asarray(words, dtype=object), hash_key=WORD_KEY, categorize=False)


def token_table(texts: list[str]) -> TokenTable:
    """Tokenise normalised texts (single spaces, as `normalize` leaves them) with Arrow: no Python
    string per token, one per distinct word."""
    arr = pa.array(texts, type=pa.string())
    split = pc.split_pattern(arr, " ")
    owner = pc.list_parent_indices(split).to_numpy()
    flat = pc.list_flatten(split)
    keep = pc.not_equal(pc.utf8_length(flat), 0)  # an empty text has one empty token
    owner, flat = owner[keep.to_numpy(zero_copy_only=False)], flat.filter(keep)
    encoded = pc.dictionary_encode(flat)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    vocab = encoded.dictionary
    ids = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    counts = _count_matrix(owner.astype(np.int64), ids, len(texts), len(vocab))
    words = np.asarray(vocab.to_pylist(), dtype=object)
    return TokenTable(arr, counts.indptr.astype(np.int64), counts.indices.astype(np.int32),
                      counts.data.astype(np.int32), vocab, word_hashes(words))


def merge_doc_freq(pieces: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(sorted word hashes, document frequency summed over the blocks)."""
    if not pieces:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    hashes = np.concatenate([p[0] for p in pieces])
    uniq, inverse = np.unique(hashes, return_inverse=True)
    df = np.bincount(inverse.ravel(), weights=np.concatenate([p[1] for p in pieces]), minlength=len(uniq))
    return uniq, df.astype(np.int64)


def join_rows(parts: list[tuple[TokenTable, np.ndarray]], doc_freq: tuple[np.ndarray, np.ndarray],
              n_texts: int) -> WordTable:
    """The `WordTable` of rows `rows` of each table, in order, over the union of the words they use,
    weighted by `doc_freq` (word hash -> distinct texts using it, of `n_texts`); words no indexed text
    uses get `WordWeights.unseen`."""
    subs, used_ids, hashes, words = [], [], [], []
    for table, rows in parts:
        sub = table.matrix()[np.asarray(rows, dtype=np.int64)]
        used = np.unique(sub.indices)
        subs.append(sub)
        used_ids.append(used)
        hashes.append(table.hashes[used])
        words.extend(table.vocab.take(pa.array(used)).to_pylist())
    all_hashes = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
    all_words = np.asarray(words, dtype=object)
    uniq, first, inverse = np.unique(all_hashes, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    vocab = all_words[first]
    if not np.array_equal(vocab[inverse], all_words):
        raise RuntimeError("two different words share a 64-bit hash; rerun with --engine local")
    mats, offset = [], 0
    for sub, used in zip(subs, used_ids, strict=True):
        to_union = np.zeros(sub.shape[1], dtype=np.int64)
        to_union[used] = inverse[offset:offset + len(used)]
        offset += len(used)
        mat = sp.csr_matrix((sub.data, to_union[sub.indices], sub.indptr), shape=(sub.shape[0], len(uniq)))
        mat.sort_indices()
        mats.append(mat)
    counts = sp.vstack(mats, format="csr") if mats else sp.csr_matrix((0, len(uniq)), dtype=np.int32)
    known_hashes, known_df = doc_freq
    df = np.zeros(len(uniq), dtype=np.float64)
    if len(known_hashes):
        pos = np.clip(np.searchsorted(known_hashes, uniq), 0, len(known_hashes) - 1)
        hit = known_hashes[pos] == uniq
        df[hit] = known_df[pos[hit]]
    weights = np.sqrt(np.log((n_texts + 1) / (df + 1)) + 1)
    ww = WordWeights(weights={}, n_texts=n_texts)
    weights[df == 0] = ww.unseen  # words of query texts only: `WordWeights`'s own unseen weight
    ww.weights = dict(zip(vocab[df > 0].tolist(), weights[df > 0].tolist(), strict=True))
    texts = pa.concat_arrays([table.texts.take(pa.array(np.asarray(rows, dtype=np.int64)))
                              for table, rows in parts]) if parts else pa.array([], pa.string())
    return WordTable(cast(list[str], ArrowTexts(texts)), vocab, weights, counts, ww)
