"""Word-level similarity of normalised texts, the near-duplicate checks' exact measure: a bag-of-words
Jaccard weighted by sqrt-IDF (`WordWeights`) in which two words of 3+ characters also match when they
are one edit apart (a typo). `text_similarity` scores one pair; `pair_similarities` scores many pairs
at once (exact matches as a sparse minimum of per-text word counts, typo matches by one rapidfuzz
`cpdist` over the distinct word pairs). See neighbors.py for how candidate pairs are found."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain

import numpy as np
import pandas as pd
from rapidfuzz.distance import OSA
from rapidfuzz.process import cpdist
from scipy.sparse import coo_matrix, csr_matrix

_CHUNK = 100_000  # pairs per vectorised block
_MIN_TYPO_LEN = 3  # a typo pair needs one word this long


class WordWeights:
    """Square-rooted smoothed IDF of each word over a set of texts: rare (content) words weigh more
    than frequent (function) words; unseen words get the largest weight."""

    def __init__(self, tokenized: list[list[str]] | None = None, *, weights: dict[str, float] | None = None,
                 n_texts: int = 0) -> None:
        if weights is None:
            df = Counter(chain.from_iterable(set(t) for t in tokenized or []))
            n_texts = len(tokenized or [])
            weights = {w: _idf_weight(n_texts, c) for w, c in df.items()}
        self.weights = weights
        self.unseen = _idf_weight(n_texts, 0)

    def __call__(self, word: str) -> float:
        return self.weights.get(word, self.unseen)

    def total(self, tokens: list[str]) -> float:
        return sum(self.weights.get(w, self.unseen) for w in tokens)


def _idf_weight(n_texts: int, doc_freq: int) -> float:
    return math.sqrt(math.log((n_texts + 1) / (doc_freq + 1)) + 1)


@dataclass
class WordTable:
    """Word counts of a list of texts (`counts`: text x word id, CSR) over a vocabulary `words`, and
    each word's `WordWeights` weight: the vectorised form of `text_similarity`'s inputs."""

    texts: list[str]
    words: np.ndarray  # word id -> word (object array)
    weights: np.ndarray  # word id -> weight
    counts: csr_matrix
    word_weights: WordWeights

    @classmethod
    def build(cls, texts: list[str]) -> WordTable:
        """Vocabulary and sqrt-IDF weights of `texts` themselves (as `WordWeights(tokenized)`)."""
        owner, flat = _flat_tokens(texts)
        ids, words = pd.factorize(flat, sort=False)
        counts = _count_matrix(owner, ids, len(texts), len(words))
        doc_freq = np.bincount(counts.indices, minlength=len(words))
        n = len(texts)
        weights = np.sqrt(np.log((n + 1) / (doc_freq + 1)) + 1)
        word_weights = WordWeights(weights=dict(zip(words.tolist(), weights.tolist(), strict=True)), n_texts=n)
        return cls(texts, np.asarray(words, dtype=object), weights, counts, word_weights)

    def encode(self, texts: list[str]) -> tuple[WordTable, WordTable]:
        """(`texts` over this vocabulary with unseen words appended, this table widened to match);
        weights stay this table's, unseen words get `WordWeights.unseen`."""
        owner, flat = _flat_tokens(texts)
        ids = pd.Index(self.words).get_indexer(flat)
        new = ids < 0
        new_ids, new_words = pd.factorize(flat[new], sort=False)
        ids[new] = len(self.words) + new_ids
        width = len(self.words) + len(new_words)
        words = np.concatenate([self.words, np.asarray(new_words, dtype=object)])
        weights = np.concatenate([self.weights, np.full(len(new_words), self.word_weights.unseen)])
        wide = csr_matrix((self.counts.data, self.counts.indices, self.counts.indptr),
                          shape=(self.counts.shape[0], width))
        return (WordTable(texts, words, weights, _count_matrix(owner, ids, len(texts), width), self.word_weights),
                WordTable(self.texts, words, weights, wide, self.word_weights))

    def totals(self) -> np.ndarray:
        """Total word weight of every text."""
        return np.asarray(self.counts @ self.weights, dtype=np.float64)


def _flat_tokens(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(owner text index, token) of every whitespace token of `texts`, in order.

    One split of the joined texts (the joining space never merges tokens): a list per text would be
    millions of live containers for the cyclic garbage collector to rescan."""
    per_text = np.fromiter((len(t.split()) for t in texts), dtype=np.int64, count=len(texts))
    flat = " ".join(texts).split()
    return np.repeat(np.arange(len(texts)), per_text), np.asarray(flat, dtype=object)


def _count_matrix(owner: np.ndarray, ids: np.ndarray, n_rows: int, n_cols: int) -> csr_matrix:
    counts = coo_matrix((np.ones(len(ids), dtype=np.int32), (owner, ids)), shape=(n_rows, n_cols)).tocsr()
    counts.sum_duplicates()
    return counts


def _typo_pair(word: str, other: str) -> bool:
    """One edit apart, the longer word has 3+ characters, and not a negation ("cant" vs "can")."""
    if abs(len(word) - len(other)) > 1 or max(len(word), len(other)) < _MIN_TYPO_LEN:
        return False
    if OSA.distance(word, other, score_cutoff=1) > 1:
        return False
    shorter, longer = (word, other) if len(word) < len(other) else (other, word)
    return not (longer == shorter + "t" and shorter.endswith("n"))


def text_similarity(a: list[str], b: list[str], weights: WordWeights | None = None) -> float:
    """Weighted bag-of-words Jaccard of two token lists: matched weight / (matched + unmatched weight).
    Unmatched words one edit apart (substitution, insertion, deletion or swap of
    neighbours; see `_typo_pair`) match too, with the smaller of the two weights. Unit weights by default."""
    table, unseen = (weights.weights, weights.unseen) if weights is not None else ({}, 1.0)
    get = table.get
    counts: dict[str, int] = {}
    for word in a:
        counts[word] = counts.get(word, 0) + 1
    matched = unmatched = 0.0
    right: list[str] = []
    for word in b:
        if counts.get(word, 0) > 0:
            counts[word] -= 1
            matched += get(word, unseen)
        else:
            right.append(word)
    for word, count in counts.items():
        for _ in range(count):
            hit = -1
            if len(word) >= _MIN_TYPO_LEN - 1:
                for k, other in enumerate(right):
                    if _typo_pair(word, other):
                        hit = k
                        break
            if hit >= 0:
                matched += min(get(word, unseen), get(right.pop(hit), unseen))
            else:
                unmatched += get(word, unseen)
    unmatched += sum(get(w, unseen) for w in right)
    total = matched + unmatched
    return matched / total if total else 1.0


def pair_similarities(left: WordTable, right: WordTable, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """`text_similarity(left text i[k], right text j[k], left.word_weights)` for every k, vectorised
    (both tables over one vocabulary): exact word matches by a sparse minimum of word counts, typo
    matches among the words left unmatched. A pair in which a word has two typo partners (where
    `text_similarity`'s greedy order matters) is scored by `text_similarity` itself."""
    out = np.empty(len(i), dtype=np.float64)
    lengths = np.fromiter(map(len, left.words), dtype=np.int64, count=len(left.words))
    last = np.array([w[-1] for w in left.words.tolist()], dtype=object)  # last character
    left_totals, right_totals = left.totals(), right.totals()

    def block(start: int, stop: int) -> None:
        a, b = i[start:stop], j[start:stop]
        sims, clashes = _chunk_similarities(left.counts[a], right.counts[b], left_totals[a] + right_totals[b],
                                            left.words, left.weights, lengths, last)
        for k in clashes.tolist():
            sims[k] = text_similarity(left.texts[a[k]].split(), right.texts[b[k]].split(), left.word_weights)
        out[start:stop] = sims

    in_blocks(len(i), _CHUNK, block)
    return out


def in_blocks(n: int, size: int, work: Callable[[int, int], None], workers: int = 1) -> None:
    """work(start, stop) for consecutive blocks of range(n), on `workers` threads (for work whose
    heavy part is numpy, which releases the GIL)."""
    starts = range(0, n, size)
    if len(starts) <= 1 or workers == 1:
        for start in starts:
            work(start, min(start + size, n))
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda start: work(start, min(start + size, n)), starts))


def _chunk_similarities(a: csr_matrix, b: csr_matrix, totals: np.ndarray, words: np.ndarray, weights: np.ndarray,
                        lengths: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Similarities of row pairs (a[k], b[k]) of two count matrices, and the pairs to redo exactly."""
    common = a.minimum(b)
    exact_weight = common @ weights
    rest_a, rest_b = (a - common).tocoo(), (b - common).tocoo()
    row_a, word_a, count_a = _typo_side(rest_a, lengths)
    row_b, word_b, count_b = _typo_side(rest_b, lengths)
    # every (unmatched word of a, unmatched word of b) of the same pair
    per_row_b = np.bincount(row_b, minlength=a.shape[0])
    first_b = np.cumsum(per_row_b) - per_row_b
    repeat = per_row_b[row_a]
    ka = np.repeat(np.arange(len(row_a)), repeat)
    kb = first_b[row_a[ka]] + np.arange(len(ka)) - np.repeat(np.cumsum(repeat) - repeat, repeat)
    len_a, len_b = lengths[word_a[ka]], lengths[word_b[kb]]
    near = (np.abs(len_a - len_b) <= 1) & (np.maximum(len_a, len_b) >= _MIN_TYPO_LEN)
    ka, kb = ka[near], kb[near]
    typo = _typo_word_pairs(words, lengths, last, word_a[ka], word_b[kb])
    ka, kb = ka[typo], kb[typo]
    rows = row_a[ka]
    clash = (np.bincount(ka, minlength=len(row_a))[ka] > 1) | (np.bincount(kb, minlength=len(row_b))[kb] > 1)
    n_match = np.minimum(count_a[ka], count_b[kb])
    wa, wb = weights[word_a[ka]], weights[word_b[kb]]
    matched = exact_weight + np.bincount(rows, n_match * np.minimum(wa, wb), minlength=a.shape[0])
    used = np.bincount(rows, n_match * (wa + wb), minlength=a.shape[0])  # weight of typo-matched words
    unmatched = totals - 2 * exact_weight - used
    unmatched[unmatched < 1e-9 * totals] = 0.0  # rounding: nothing left unmatched
    union = matched + unmatched
    sims = np.divide(matched, union, out=np.ones_like(union), where=union > 0)
    return sims, np.unique(rows[clash])


def _typo_side(rest: coo_matrix, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pair row, word id, count) of the unmatched words long enough to take part in a typo match,
    ordered by row (`rest` comes from a CSR matrix)."""
    keep = (rest.data > 0) & (lengths[rest.col] >= _MIN_TYPO_LEN - 1)
    return rest.row[keep], rest.col[keep], rest.data[keep]


def _typo_word_pairs(words: np.ndarray, lengths: np.ndarray, last: np.ndarray, p: np.ndarray,
                     q: np.ndarray) -> np.ndarray:
    """`_typo_pair(words[p[k]], words[q[k]])` for every k (lengths already checked), one OSA distance
    per distinct word pair."""
    if len(p) == 0:
        return np.zeros(0, dtype=bool)
    width = np.int64(len(words))
    distinct, inverse = np.unique(p.astype(np.int64) * width + q, return_inverse=True)
    up, uq = distinct // width, distinct % width
    ok = cpdist(words[up].tolist(), words[uq].tolist(), scorer=OSA.distance, score_cutoff=1, dtype=np.int32) <= 1
    # the negation guard: one edit apart, so a longer word ending in "t" against a shorter one ending
    # in "n" is exactly shorter + "t" ("can" / "cant")
    longer_p, longer_q = lengths[up] > lengths[uq], lengths[uq] > lengths[up]
    negation = (longer_p & (last[up] == "t") & (last[uq] == "n")) | (longer_q & (last[uq] == "t") & (last[up] == "n"))
    return (ok & ~negation)[inverse.ravel()]
