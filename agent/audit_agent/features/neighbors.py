"""Exact and near-duplicate neighbours of normalised texts: hashing for identical texts,
MinHash LSH for candidates, an exact word-level similarity (word_similarity.py) to confirm them.

Similarity (`text_similarity`) is a bag-of-words Jaccard weighted by sqrt-IDF over the indexed
texts (`WordWeights`), in which two words of 3+ characters also match when they are one edit
apart (a typo). Word order is ignored. Weighting makes a changed function word ("do" -> "can")
cost less than a changed content word ("card" -> "phone"), which in short intents changes the
meaning. Unweighted, "how do i reset my pin" / "how can i reset my pin" score 5/7 and
"hi i need to reset my pin" / "hi i need to reset my pin please" 7/8.

Candidates come from MinHash signatures over within-word character trigrams (robust to typos
and word order). Signatures use datasketch's affine32 MinHash scheme and permutations
(`MinHash(num_perm, seed).permutations`), computed for all texts at once with numpy instead of
one `MinHash` object per row; the band layout is the one `MinHashLSH` picks for the candidate
threshold, and buckets are formed by sorting band keys instead of per-row dict inserts (in a
bucket each text is paired with the next `_BUCKET_SPAN` texts, so big buckets of near copies give
linear, not quadratic, candidate pairs). Only distinct texts are sketched; signature blocks run on
both cores.

Candidates are verified all at once (`pair_similarities`): exact word matches as a sparse minimum of
per-text word counts (`WordTable`), typo matches by joining the words each pair leaves unmatched and
one rapidfuzz `cpdist` over the distinct word pairs. It returns `text_similarity`'s score; the rare
pair where a word has two typo partners (the greedy order matters) is scored by `text_similarity`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from datasketch import MinHash, MinHashLSH
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from audit_agent.features.word_similarity import (
    WordTable,
    in_blocks,
    pair_similarities,
)

_BUCKET_SPAN = 4  # in a sorted band bucket, each text is paired with the next 4 (all pairs when small)
_CHUNK = 100_000  # pairs per vectorised block
_SIGNATURE_BLOCK = 4096  # texts per signature block: its arrays stay cache-sized
_WORKERS = min(4, os.cpu_count() or 1)  # threads for signature blocks (pure numpy)
_U32 = np.uint32


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser (the pre-mix datasketch's affine32 scheme applies)."""
    h = h ^ (h >> _U32(16))
    h = h * _U32(0x85EBCA6B)
    h = h ^ (h >> _U32(13))
    h = h * _U32(0xC2B2AE35)
    return h ^ (h >> _U32(16))


def trigram_shingles(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Within-word byte trigrams of `" " + text + " "` for every text, packed into uint32.

    Returns (shingles, owner): `owner[k]` is the index of the text shingle k came from, ascending.
    A trigram whose middle byte is a space would span two words and is left out.
    """
    lengths = np.fromiter((len(t.encode("utf-8")) + 3 for t in texts), dtype=np.int64, count=len(texts))
    buf = np.frombuffer("".join(f" {t} \n" for t in texts).encode("utf-8"), dtype=np.uint8)
    if len(buf) < 3:
        return np.zeros(0, _U32), np.zeros(0, np.int64)
    owner = np.repeat(np.arange(len(texts)), lengths)
    b0, b1, b2 = buf[:-2], buf[1:-1], buf[2:]
    newline = ord("\n")
    keep = (b0 != newline) & (b1 != newline) & (b2 != newline) & (b1 != ord(" "))
    packed = (b0.astype(_U32) << _U32(16)) | (b1.astype(_U32) << _U32(8)) | b2.astype(_U32)
    return packed[keep], owner[:-2][keep]


@dataclass
class Sketcher:
    """MinHash signatures and LSH band keys, all rows at once."""

    num_perm: int
    seed: int
    candidate_threshold: float
    perm_a: np.ndarray = field(init=False, repr=False)
    perm_b: np.ndarray = field(init=False, repr=False)
    bands: int = field(init=False)
    rows: int = field(init=False)

    def __post_init__(self) -> None:
        perms = MinHash(num_perm=self.num_perm, seed=self.seed, scheme="affine32").permutations
        self.perm_a, self.perm_b = perms[0].astype(_U32), perms[1].astype(_U32)
        lsh = MinHashLSH(threshold=self.candidate_threshold, num_perm=self.num_perm)
        self.bands, self.rows = lsh.b, lsh.r

    def signatures(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(signature matrix len(texts) x num_perm uint32, mask of texts that have any shingle).

        Computed in blocks of texts (cache-sized arrays), on `_WORKERS` threads (numpy releases the GIL)."""
        sig = np.full((len(texts), self.num_perm), np.iinfo(_U32).max, dtype=_U32)
        has = np.zeros(len(texts), dtype=bool)

        def block(start: int, stop: int) -> None:
            shingles, owner = trigram_shingles(texts[start:stop])
            if len(shingles) == 0:
                return
            mixed = _fmix32(shingles)
            starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
            rows = owner[starts] + start
            hashed = np.empty_like(mixed)
            out = np.empty((len(starts), self.num_perm), dtype=_U32)
            for k in range(self.num_perm):
                np.multiply(mixed, self.perm_a[k], out=hashed)
                np.add(hashed, self.perm_b[k], out=hashed)
                np.minimum.reduceat(hashed, starts, out=out[:, k])
            sig[rows] = out
            has[rows] = True

        in_blocks(len(texts), _SIGNATURE_BLOCK, block, _WORKERS)
        return sig, has

    def band_keys(self, sig: np.ndarray) -> np.ndarray:
        """One uint64 key per (text, band): a multiplicative hash of that band's signature values."""
        rng = np.random.default_rng(self.seed)
        mult = rng.integers(1, 2**63, size=self.rows, dtype=np.uint64) | np.uint64(1)
        keys = np.zeros((sig.shape[0], self.bands), dtype=np.uint64)
        for band in range(self.bands):
            block = sig[:, band * self.rows:(band + 1) * self.rows].astype(np.uint64)
            keys[:, band] = (block * mult).sum(axis=1, dtype=np.uint64) + np.uint64(band)
        return keys


def _plausible(sig: np.ndarray, totals: np.ndarray, pairs: np.ndarray, threshold: float) -> np.ndarray:
    """Cheap vectorised filter before the exact similarity: ratio of total word weights (an upper
    bound of the similarity), then the MinHash estimate of trigram Jaccard on the first 64 values."""
    u, v = pairs
    pairs = pairs[:, np.minimum(totals[u], totals[v]) >= threshold * np.maximum(totals[u], totals[v])]
    cols = min(64, sig.shape[1])
    keep = np.zeros(pairs.shape[1], dtype=bool)

    def block(start: int, stop: int) -> None:
        a, b = pairs[:, start:stop]
        keep[start:stop] = (sig[a, :cols] == sig[b, :cols]).mean(axis=1) >= max(0.2, threshold - 0.3)

    in_blocks(pairs.shape[1], _CHUNK, block)
    return pairs[:, keep]


def _bucket_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (2 x m, i < j) of rows sharing a band key in any band, and each band's row
    order (bands x rows, int32: rows sorted by key, then row). In a band's bucket every row is paired
    with the next `_BUCKET_SPAN` rows (all pairs when the bucket is small)."""
    n = keys.shape[0]
    orders = np.empty((keys.shape[1], n), dtype=np.int32)
    found = []
    for band in range(keys.shape[1]):
        order = np.argsort(keys[:, band], kind="stable")
        orders[band] = order
        sorted_keys = keys[order, band]
        for step in range(1, _BUCKET_SPAN + 1):
            same = np.flatnonzero(sorted_keys[step:] == sorted_keys[:-step])
            if len(same) == 0:
                break
            found.append(order[same] * np.int64(n) + order[same + step])  # stable order: i < j
    if not found:
        return np.zeros((2, 0), dtype=np.int64), orders
    flat = np.concatenate(found)
    del found
    flat.sort()
    flat = flat[np.r_[True, flat[1:] != flat[:-1]]]
    return np.vstack([flat // n, flat % n]), orders


@dataclass
class NeighborIndex:
    """Exact and near-duplicate structure of one split's normalised texts.

    Positions are 0-based row positions of the texts given to `build`. Near pairs are held
    between distinct texts (`unique_pairs`); `codes[pos]` says which distinct text a row has.
    """

    texts: list[str]
    threshold: float
    sketcher: Sketcher
    codes: np.ndarray  # position -> distinct-text id
    unique: list[str]  # distinct-text id -> text
    first_position: np.ndarray  # distinct-text id -> first position with that text
    unique_pairs: np.ndarray  # 2 x m distinct-text ids (u < v) with similarity >= threshold
    unique_similarity: np.ndarray  # m similarities
    band_keys: np.ndarray = field(repr=False)
    sketched: np.ndarray = field(repr=False)  # distinct-text id -> has a signature
    band_order: np.ndarray = field(repr=False)  # per band: sketched texts (as ranks among them) by band key
    words: WordTable = field(repr=False)
    totals: np.ndarray = field(repr=False)  # distinct-text id -> total word weight

    @classmethod
    def build(cls, normalized_texts: list[str], *, threshold: float, num_perm: int, seed: int) -> NeighborIndex:
        """Index `normalized_texts` (see `features.text.normalize`); near pairs need similarity >= threshold."""
        codes, uniques = pd.factorize(pd.Series(normalized_texts, dtype=object), sort=False)
        unique = [str(u) for u in uniques]
        first_position = np.full(len(unique), -1, dtype=np.int64)
        first_position[codes[::-1]] = np.arange(len(codes))[::-1]
        sketcher = Sketcher(num_perm, seed, candidate_threshold=max(0.2, threshold - 0.35))
        sig, sketched = sketcher.signatures(unique)
        keys = sketcher.band_keys(sig)
        candidates, band_order = _bucket_pairs(keys[sketched])
        candidates = np.flatnonzero(sketched)[candidates]
        words = WordTable.build(unique)
        totals = words.totals()
        candidates = _plausible(sig, totals, candidates, threshold)
        sims = pair_similarities(words, words, candidates[0], candidates[1])
        keep = sims >= threshold
        return cls(normalized_texts, threshold, sketcher, codes.astype(np.int64), unique, first_position,
                   candidates[:, keep], sims[keep], keys, sketched, band_order, words, totals)

    def exact_groups(self) -> list[list[int]]:
        """Positions sharing one normalised text, for every text that occurs 2+ times (in order)."""
        counts = np.bincount(self.codes, minlength=len(self.unique))
        dup_codes = np.flatnonzero(counts >= 2)
        if len(dup_codes) == 0:
            return []
        order = np.argsort(self.codes, kind="stable")
        starts = np.searchsorted(self.codes[order], dup_codes)
        return [order[s:s + counts[c]].tolist() for s, c in zip(starts, dup_codes, strict=True)]

    def pairs(self) -> list[tuple[int, int, float]]:
        """Near-duplicate pairs of distinct texts as (first position of one, of the other, similarity)."""
        u, v = self.first_position[self.unique_pairs]
        return list(zip(u.tolist(), v.tolist(), self.unique_similarity.tolist(), strict=True))

    def groups(self) -> list[list[int]]:
        """Connected components (size >= 2) of rows linked by identical text or near-duplicate pairs."""
        n_unique = len(self.unique)
        graph = coo_matrix((np.ones(self.unique_pairs.shape[1]), (self.unique_pairs[0], self.unique_pairs[1])),
                           shape=(n_unique, n_unique))
        _, comp_of_unique = connected_components(graph, directed=False)
        comp = comp_of_unique[self.codes]
        sizes = np.bincount(comp)
        order = np.argsort(comp, kind="stable")
        bounds = np.r_[0, np.cumsum(sizes)]
        out = [order[bounds[c]:bounds[c + 1]].tolist() for c in np.flatnonzero(sizes >= 2)]
        return sorted(out, key=lambda g: g[0])

    def query(self, normalized_texts: list[str]) -> list[list[tuple[int, float]]]:
        """For each text of another split: indexed rows it duplicates, as (first position of the matching
        indexed text, similarity), best first; an identical text scores 1.0 and comes first."""
        codes, uniques = pd.factorize(pd.Series(normalized_texts, dtype=object), sort=False)
        other = [str(u) for u in uniques]
        exact = pd.Index(self.unique).get_indexer(pd.Index(other))
        sig, sketched = self.sketcher.signatures(other)
        keys = self.sketcher.band_keys(sig)
        indexed = np.flatnonzero(self.sketched)
        queried = np.flatnonzero(sketched)
        cand_other, cand_mine = [np.flatnonzero(exact >= 0)], [exact[exact >= 0]]
        for band in range(keys.shape[1]):
            order = indexed[self.band_order[band]]
            sorted_keys = self.band_keys[order, band]
            left = np.searchsorted(sorted_keys, keys[queried, band], side="left")
            right = np.searchsorted(sorted_keys, keys[queried, band], side="right")
            for step in range(_BUCKET_SPAN):
                hit = left + step < right
                if not hit.any():
                    break
                cand_other.append(queried[hit])
                cand_mine.append(order[left[hit] + step])
        n_mine = np.int64(len(self.unique))
        flat = np.unique(np.concatenate(cand_other).astype(np.int64) * n_mine + np.concatenate(cand_mine))
        o, m = flat // n_mine, flat % n_mine
        other_words, mine = self.words.encode(other)
        other_totals = other_words.totals()
        bound = np.minimum(other_totals[o], self.totals[m]) >= self.threshold * np.maximum(other_totals[o],
                                                                                            self.totals[m])
        o, m = o[bound], m[bound]
        sims = pair_similarities(other_words, mine, o, m)
        sims[m == exact[o]] = 1.0
        keep = sims >= self.threshold
        o, m, sims = o[keep], m[keep], sims[keep]
        first = self.first_position[m]
        order = np.lexsort((first, m != exact[o], -sims, o))
        o, first, sims = o[order], first[order], sims[order]
        bounds = np.searchsorted(o, np.arange(len(other) + 1))
        first_list, sim_list = first.tolist(), sims.tolist()
        per_unique = [list(zip(first_list[s:e], sim_list[s:e], strict=True))
                      for s, e in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)]
        return [per_unique[c] for c in codes]
