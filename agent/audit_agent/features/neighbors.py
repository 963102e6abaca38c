"""Exact and near-duplicate neighbours of normalised texts: hashing for identical texts,
MinHash LSH for candidates, an exact word-level similarity to confirm them.

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
threshold, and buckets are formed by sorting band keys instead of per-row dict inserts. Only
distinct texts are sketched.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from itertools import chain

import numpy as np
import pandas as pd
from datasketch import MinHash, MinHashLSH
from rapidfuzz.distance import OSA
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

_BUCKET_SPAN = 4  # in a sorted band bucket, each text is paired with the next 4 (all pairs when small)
_CHUNK = 200_000
_MIN_TYPO_LEN = 3  # a typo pair needs one word this long
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
        """(signature matrix len(texts) x num_perm uint32, mask of texts that have any shingle)."""
        shingles, owner = trigram_shingles(texts)
        sig = np.full((len(texts), self.num_perm), np.iinfo(_U32).max, dtype=_U32)
        has = np.zeros(len(texts), dtype=bool)
        if len(shingles) == 0:
            return sig, has
        mixed = _fmix32(shingles)
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        rows = owner[starts]
        has[rows] = True
        for k in range(self.num_perm):
            sig[rows, k] = np.minimum.reduceat(mixed * self.perm_a[k] + self.perm_b[k], starts)
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


class WordWeights:
    """Square-rooted smoothed IDF of each word over a set of texts: rare (content) words weigh more
    than frequent (function) words; unseen words get the largest weight."""

    def __init__(self, tokenized: list[list[str]]) -> None:
        df = Counter(chain.from_iterable(set(t) for t in tokenized))
        n = len(tokenized)
        self.weights = {w: math.sqrt(math.log((n + 1) / (c + 1)) + 1) for w, c in df.items()}
        self.unseen = math.sqrt(math.log(n + 1) + 1)

    def __call__(self, word: str) -> float:
        return self.weights.get(word, self.unseen)

    def total(self, tokens: list[str]) -> float:
        return sum(self.weights.get(w, self.unseen) for w in tokens)


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


def _plausible(sig: np.ndarray, totals: np.ndarray, pairs: np.ndarray, threshold: float) -> np.ndarray:
    """Cheap vectorised filter before the exact similarity: ratio of total word weights (an upper
    bound of the similarity), then the MinHash estimate of trigram Jaccard on the first 64 values."""
    u, v = pairs
    pairs = pairs[:, np.minimum(totals[u], totals[v]) >= threshold * np.maximum(totals[u], totals[v])]
    cols = min(64, sig.shape[1])
    keep = np.zeros(pairs.shape[1], dtype=bool)
    for start in range(0, pairs.shape[1], _CHUNK):
        a, b = pairs[:, start:start + _CHUNK]
        keep[start:start + _CHUNK] = (sig[a, :cols] == sig[b, :cols]).mean(axis=1) >= max(0.2, threshold - 0.3)
    return pairs[:, keep]


def _bucket_pairs(keys: np.ndarray) -> np.ndarray:
    """Candidate pairs (2 x m, i < j) of rows sharing a band key in any band."""
    found = []
    for band in range(keys.shape[1]):
        order = np.argsort(keys[:, band], kind="stable")
        sorted_keys = keys[order, band]
        for step in range(1, _BUCKET_SPAN + 1):
            same = np.flatnonzero(sorted_keys[step:] == sorted_keys[:-step])
            if len(same) == 0:
                break
            found.append(np.vstack([order[same], order[same + step]]))
    if not found:
        return np.zeros((2, 0), dtype=np.int64)
    pairs = np.sort(np.hstack(found), axis=0)
    n = np.int64(keys.shape[0])
    flat = np.sort(pd.unique(pairs[0] * n + pairs[1]))
    return np.vstack([flat // n, flat % n])


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
    weights: WordWeights = field(repr=False)
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
        candidates = _bucket_pairs(keys[sketched]) if sketched.any() else np.zeros((2, 0), np.int64)
        candidates = np.flatnonzero(sketched)[candidates]
        tokens = [t.split() for t in unique]
        weights = WordWeights(tokens)
        totals = np.fromiter((weights.total(t) for t in tokens), dtype=np.float64, count=len(tokens))
        candidates = _plausible(sig, totals, candidates, threshold)
        sims = np.fromiter((text_similarity(tokens[u], tokens[v], weights) for u, v in candidates.T.tolist()),
                           dtype=np.float64, count=candidates.shape[1])
        keep = sims >= threshold
        return cls(normalized_texts, threshold, sketcher, codes.astype(np.int64), unique, first_position,
                   candidates[:, keep], sims[keep], keys, sketched, weights, totals)

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
        lookup = {text: i for i, text in enumerate(self.unique)}
        codes, uniques = pd.factorize(pd.Series(normalized_texts, dtype=object), sort=False)
        other = [str(u) for u in uniques]
        found: list[dict[int, float]] = [{} for _ in other]
        for i, text in enumerate(other):
            if text in lookup:
                found[i][lookup[text]] = 1.0
        sig, sketched = self.sketcher.signatures(other)
        keys = self.sketcher.band_keys(sig)
        indexed = np.flatnonzero(self.sketched)
        cand_other, cand_mine = [], []
        for band in range(keys.shape[1]):
            order = indexed[np.argsort(self.band_keys[indexed, band], kind="stable")]
            sorted_keys = self.band_keys[order, band]
            q = np.flatnonzero(sketched)
            left = np.searchsorted(sorted_keys, keys[q, band], side="left")
            right = np.searchsorted(sorted_keys, keys[q, band], side="right")
            for step in range(_BUCKET_SPAN):
                hit = left + step < right
                if not hit.any():
                    break
                cand_other.append(q[hit])
                cand_mine.append(order[left[hit] + step])
        if cand_other:
            n_mine = np.int64(len(self.unique))
            flat = np.sort(pd.unique(np.concatenate(cand_other) * n_mine + np.concatenate(cand_mine)))
            other_tokens = [t.split() for t in other]
            for o, m in zip((flat // n_mine).tolist(), (flat % n_mine).tolist(), strict=True):
                if m in found[o]:
                    continue
                other_total = self.weights.total(other_tokens[o])
                if min(other_total, self.totals[m]) < self.threshold * max(other_total, self.totals[m]):
                    continue
                sim = text_similarity(other_tokens[o], self.unique[m].split(), self.weights)
                if sim >= self.threshold:
                    found[o][m] = sim
        exact = [lookup.get(text, -1) for text in other]
        per_unique = [[(int(self.first_position[m]), s) for m, s in
                       sorted(f.items(), key=lambda ms: (-ms[1], ms[0] != e, self.first_position[ms[0]]))]
                      for f, e in zip(found, exact, strict=True)]
        return [per_unique[c] for c in codes]
