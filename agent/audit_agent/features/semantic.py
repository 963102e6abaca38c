"""Meaning-level analyses of one labelled set of sentence embeddings (pure functions: vectors,
labels and ids in, small typed results out).

- `paraphrase_conflicts`: rows close in meaning that carry different labels, grouped, side by side.
- `neighbour_label_margin`: the embedding-neighbour vote `detect_label_issues` can add to its own.
- `semantic_duplicates`: same-label rows that say the same thing in other words (opt-in dedup).

Cosine similarity alone does not separate paraphrases from unrelated pairs (0.37 for a true
paraphrase, 0.33 for an unrelated pair), so every decision is calibrated against the row's own
label: a pair is a conflict when a row is much closer to a row of another label than to the rows
of its own label (`margin`, calibrated on the data's own spread of margins), and that other row is
among its nearest neighbours (`rank`). Given the out-of-fold text classifier's probabilities, a
pair also needs the classifier not to rule out the other row's label for the row (`min_other`): a
second signal that owes nothing to the pair, which drops rows merely near a wrongly labelled one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from audit_agent.features.vector_index import knn

# Chosen on CLINC150 (bench/paraphrase_conflicts.py), one setting per kind of evidence:
CONFLICT_RANK = 3  # meaning alone: the other-label row among the row's 3 nearest neighbours, and the row that
CONFLICT_Z = 3.5  # much closer to it than to its own label: margin >= median + 3.5 MAD of the data's margins
GATED_RANK = 5  # with the out-of-fold classifier as a second signal: 5 nearest neighbours,
GATED_Z = 3.0  # median + 3.0 MAD,
CONFLICT_MIN_OTHER = 0.02  # and the classifier's p(row a has row b's label) at least 0.02
MARGIN_FLOOR = 0.1  # the margin is at least this whatever the spread
OWN_TOP = 3
OWN_SEARCH = 20  # neighbours searched per row; own-label rows among them need no extra search
BLOCK_CELLS = 8_000_000
VOTE_K = 5
VOTE_TEMPERATURE = 0.05
DEDUP_THRESHOLD = 0.95
DEDUP_RANK = 5
MAX_GROUP_ROWS = 50


@dataclass
class ConflictPair:
    """Row `a` (whose label looks out of place) and row `b` of another label, with their cosine
    similarity, how much closer `a` is to `b` than to its own label's rows (`margin`) and, with a
    classifier, its probability that `a` has `b`'s label (`p_other`)."""

    a: Any
    b: Any
    label_a: str
    label_b: str
    similarity: float
    margin: float
    p_other: float | None = None  # the classifier's probability that `a` has `b`'s label (when one was given)


def _rounded(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 4)


@dataclass
class ConflictGroup:
    """Rows joined by conflict pairs (a connected group), strongest pair first."""

    rows: list[Any]
    labels: dict[str, int]
    pairs: list[ConflictPair]

    @property
    def score(self) -> float:
        return max(p.margin for p in self.pairs)


@dataclass
class DuplicateGroup:
    """Same-label rows that say the same thing; `keep` is the first row, `drop` the others."""

    label: str | None
    keep: Any
    drop: list[Any]
    similarity_min: float


def class_similarity(emb: np.ndarray, rows: np.ndarray, cls: np.ndarray, codes: np.ndarray, top: int) -> np.ndarray:
    """Mean of the `top` highest cosine similarities of each row in `rows` to the rows coded
    `cls[i]` (the row itself left out). Grouped by class, so the work is |rows| x class size, never
    all pairs, in blocks of at most `BLOCK_CELLS` similarities. NaN where the class has no other row."""
    out = np.full(len(rows), np.nan)
    order = np.argsort(codes, kind="stable")
    n_cls = int(max(codes.max(initial=-1), cls.max(initial=-1))) + 1
    bounds = np.searchsorted(codes[order], np.arange(n_cls + 1))
    for c in np.unique(cls):
        if c < 0:
            continue
        members = order[bounds[c]:bounds[c + 1]]
        sel = np.flatnonzero(cls == c)
        if len(members) == 0:
            continue
        step = max(1, BLOCK_CELLS // len(members))
        kk = min(top, len(members))
        for start in range(0, len(sel), step):
            part = sel[start:start + step]
            q = rows[part]
            sims = emb[q] @ emb[members].T
            sims[q[:, None] == members[None, :]] = -np.inf
            best = -np.partition(-sims, kk - 1, axis=1)[:, :kk]
            best[~np.isfinite(best)] = np.nan
            valid = np.isfinite(best).any(axis=1)
            vals = np.full(len(part), np.nan)
            vals[valid] = np.nanmean(best[valid], axis=1)
            out[part] = vals
    return out


def own_label_similarity(emb: np.ndarray, rows: np.ndarray, codes: np.ndarray, idx: np.ndarray, sim: np.ndarray,
                         top: int = OWN_TOP) -> np.ndarray:
    """`class_similarity` of `rows` to their own label, read from the neighbour lists (`idx`, `sim`:
    every row's nearest rows, best first) where they hold `top` rows of the same label, and computed
    against the label's rows only for the rest (rows far from their own label: few)."""
    nb, ns = idx[rows], sim[rows]
    same = (nb >= 0) & (codes[np.clip(nb, 0, None)] == codes[rows][:, None])
    take = same & (np.cumsum(same, axis=1) <= top)
    count = take.sum(axis=1)
    out = np.where(count > 0, (np.where(take, ns, 0.0)).sum(axis=1) / np.maximum(count, 1), np.nan)
    class_size = np.bincount(codes[codes >= 0], minlength=int(codes.max(initial=0)) + 1)
    need = count < np.minimum(top, class_size[codes[rows]] - 1)
    if need.any():
        out[need] = class_similarity(emb, rows[need], codes[rows[need]], codes, top)
    return out


def _codes(labels: Sequence[Any]) -> tuple[np.ndarray, list[str]]:
    """Integer codes of the labels (-1 for None/NaN/empty) and the sorted class names."""
    names = sorted({str(v) for v in labels if v is not None and v == v and str(v) != ""})
    lookup = {c: i for i, c in enumerate(names)}
    codes = np.array([lookup.get(str(v), -1) if v is not None and v == v else -1 for v in labels], dtype=np.int64)
    return codes, names


def margin_threshold(emb: np.ndarray, codes: np.ndarray, idx: np.ndarray, sim: np.ndarray, *, z: float,
                     own_top: int = OWN_TOP, floor: float = MARGIN_FLOOR) -> float:
    """The dataset's own margin threshold: median + z * MAD (scaled to a standard deviation) of every
    labelled row's margin (similarity to its nearest other-label row among its neighbour lists minus
    its own-label similarity), at least `floor`. Dense, overlapping labels get a lower bar than
    well separated ones, so the same z transfers between datasets where a fixed margin does not."""
    rows = np.flatnonzero(codes >= 0)
    if len(rows) == 0:
        return floor
    nb, ns = idx[rows], sim[rows]
    other = (nb >= 0) & (codes[np.clip(nb, 0, None)] != codes[rows][:, None])
    best = np.where(other, ns, -np.inf).max(axis=1)
    has = np.isfinite(best)
    if has.sum() < 10:
        return floor
    own = own_label_similarity(emb, rows[has], codes, idx, sim, own_top)
    m = best[has] - own
    m = m[np.isfinite(m)]
    if len(m) < 10:
        return floor
    med = float(np.median(m))
    mad = 1.4826 * float(np.median(np.abs(m - med)))
    return max(floor, med + z * mad)


def label_probability(probs: np.ndarray, classes: Sequence[str], rows: np.ndarray, codes: np.ndarray,
                      names: Sequence[str]) -> np.ndarray:
    """`probs[rows[i], <column of names[codes[i]]>]` (columns named by `classes`); NaN where that
    label has no column."""
    col = {str(c): i for i, c in enumerate(classes)}
    cols = np.array([col.get(str(v), -1) for v in names], dtype=np.int64)[codes]
    out = np.full(len(rows), np.nan)
    ok = cols >= 0
    out[ok] = probs[rows[ok], cols[ok]]
    return out


def conflict_pairs(emb: np.ndarray, labels: Sequence[Any], *, rank: int | None = None,
                   margin: float | None = None, z: float | None = None, own_top: int = OWN_TOP, seed: int = 0,
                   neighbours: tuple[np.ndarray, np.ndarray] | None = None, mutual: int | None = None,
                   probs: np.ndarray | None = None, classes: Sequence[str] | None = None,
                   min_other: float = CONFLICT_MIN_OTHER) -> list[tuple[int, int, float, float]]:
    """(a, b, similarity, margin) by row position: b has another label, is among a's `rank` nearest
    rows, and a is at least `margin` closer to b than to its own label's rows (mean of its `own_top`
    nearest same-label rows). `margin=None` (the default) calibrates it on the data itself
    (`margin_threshold` with `z`). `mutual`: a must also be among b's `mutual` nearest rows.
    `probs`/`classes`: a classifier's out-of-fold probabilities (rows aligned with `emb`), a second
    signal that owes nothing to the pair: a pair is kept only where p(a has b's label) >= `min_other`
    (a label the classifier has no column for counts as no evidence either way). `rank`/`z` default
    to the setting chosen for the evidence at hand (GATED_* with `probs`, CONFLICT_* without).
    Sorted by margin, strongest first. `neighbours`: precomputed `knn(emb, k)` lists with k >= rank
    (k >= OWN_SEARCH makes the own-label look-up cheap)."""
    codes, names = _codes(labels)
    if len(codes) < 2:
        return []
    gated = probs is not None and classes is not None
    rank = rank if rank is not None else GATED_RANK if gated else CONFLICT_RANK
    z = z if z is not None else GATED_Z if gated else CONFLICT_Z
    k = max(rank, OWN_SEARCH, mutual or 0)
    all_idx, all_sim = neighbours if neighbours is not None else knn(emb, k, seed=seed)
    idx, sim = all_idx[:, :rank], all_sim[:, :rank]
    a = np.repeat(np.arange(len(codes)), idx.shape[1])
    b, s = idx.ravel(), sim.ravel()
    keep = (b >= 0) & (codes[a] >= 0)
    a, b, s = a[keep], b[keep], s[keep]
    keep = (codes[b] >= 0) & (codes[b] != codes[a])
    a, b, s = a[keep], b[keep], s[keep]
    if mutual is not None and len(a):
        keep = (all_idx[b, :mutual] == a[:, None]).any(axis=1)
        a, b, s = a[keep], b[keep], s[keep]
    if gated and len(a):
        assert probs is not None and classes is not None
        keep = ~(label_probability(probs, classes, a, codes[b], names) < min_other)  # NaN (no column): kept
        a, b, s = a[keep], b[keep], s[keep]
    if len(a) == 0:
        return []
    if margin is None:
        margin = margin_threshold(emb, codes, all_idx, all_sim, z=z, own_top=own_top)
    rows, back = np.unique(a, return_inverse=True)
    own = own_label_similarity(emb, rows, codes, all_idx, all_sim, own_top)[back]
    own = np.where(np.isnan(own), -1.0, own)  # a label with no other row: nothing to be closer to
    m = s - own
    hit = m >= margin
    order = np.argsort(-m[hit], kind="stable")
    return [(int(x), int(y), float(v), float(w)) for x, y, v, w in
            zip(a[hit][order], b[hit][order], s[hit][order], m[hit][order], strict=True)]


def paraphrase_conflicts(emb: np.ndarray, labels: Sequence[Any], ids: Sequence[Any], *, rank: int | None = None,
                         margin: float | None = None, z: float | None = None, seed: int = 0,
                         probs: np.ndarray | None = None, classes: Sequence[str] | None = None,
                         min_other: float = CONFLICT_MIN_OTHER) -> list[ConflictGroup]:
    """Groups of rows close in meaning with different labels (see `conflict_pairs`, which the
    classifier's `probs` gate when given), joined by their conflict pairs, strongest group first."""
    pairs = conflict_pairs(emb, labels, rank=rank, margin=margin, z=z, seed=seed, probs=probs, classes=classes,
                           min_other=min_other)
    if not pairs:
        return []
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    p_other = None
    if probs is not None and classes is not None:
        codes, names = _codes(labels)
        p_other = label_probability(probs, classes, a, codes[b], names)
    nodes, inverse = np.unique(np.r_[a, b], return_inverse=True)
    graph = coo_matrix((np.ones(len(a)), (inverse[:len(a)], inverse[len(a):])), shape=(len(nodes), len(nodes)))
    comp = connected_components(graph, directed=False)[1]
    groups: dict[int, list[int]] = {}
    for k in range(len(pairs)):
        groups.setdefault(int(comp[inverse[k]]), []).append(k)
    out = []
    for members in groups.values():
        rows = sorted({pairs[k][0] for k in members} | {pairs[k][1] for k in members})
        counts: dict[str, int] = {}
        for r in rows:
            counts[str(labels[r])] = counts.get(str(labels[r]), 0) + 1
        out.append(ConflictGroup(
            rows=[ids[r] for r in rows[:MAX_GROUP_ROWS]], labels=dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            pairs=[ConflictPair(ids[pairs[k][0]], ids[pairs[k][1]], str(labels[pairs[k][0]]), str(labels[pairs[k][1]]),
                                round(pairs[k][2], 4), round(pairs[k][3], 4), None if p_other is None else
                                _rounded(p_other[k])) for k in members[:MAX_GROUP_ROWS]]))
    out.sort(key=lambda g: (-g.score, -len(g.rows)))
    return out


def neighbour_label_margin(emb: np.ndarray, given: np.ndarray, suggested: np.ndarray, rows: np.ndarray, *,
                           k: int = VOTE_K, temperature: float = VOTE_TEMPERATURE) -> np.ndarray:
    """For each row in `rows`: the probability (a logistic of the similarity difference) that it
    belongs with the rows labelled `suggested[row]` rather than those labelled `given[row]`, from
    the mean of its `k` most similar rows of each label in embedding space (itself left out).
    `given`/`suggested` are class codes aligned with `emb`; rows with given < 0 get 0."""
    out = np.zeros(len(rows))
    ok = given[rows] >= 0
    if not ok.any():
        return out
    r = rows[ok]
    sim_given = np.nan_to_num(class_similarity(emb, r, given[r], given, k), nan=0.0)
    sim_sugg = np.nan_to_num(class_similarity(emb, r, suggested[r], given, k), nan=0.0)
    out[ok] = 1.0 / (1.0 + np.exp(-(sim_sugg - sim_given) / temperature))
    return out


def embedding_vote(emb: np.ndarray, given: np.ndarray, suggested: np.ndarray, rows: np.ndarray,
                   emb_rows: np.ndarray | None = None) -> np.ndarray:
    """`neighbour_label_margin` for the rows `rows` of a set of len(given) rows, when `emb` holds
    the vectors of the positions `emb_rows` only (default: all rows, in order). Returns an array of
    len(given): the vote where a row of `rows` has a vector, NaN elsewhere."""
    out = np.full(len(given), np.nan)
    if emb_rows is None:
        emb_rows = np.arange(len(given))
    local = np.full(len(given), -1, dtype=np.int64)
    local[emb_rows] = np.arange(len(emb_rows))
    covered = rows[local[rows] >= 0]
    if len(covered):
        lr = local[covered]
        sub_given = given[emb_rows]
        sub_sugg = np.zeros(len(emb_rows), dtype=np.int64)
        sub_sugg[lr] = suggested[covered]
        out[covered] = neighbour_label_margin(emb, sub_given, sub_sugg, lr)
    return out


def semantic_duplicates(emb: np.ndarray, labels: Sequence[Any] | None, ids: Sequence[Any], *,
                        threshold: float = DEDUP_THRESHOLD, rank: int = DEDUP_RANK,
                        seed: int = 0) -> list[DuplicateGroup]:
    """Groups of same-label rows whose embeddings are at least `threshold` similar (among each
    other's `rank` nearest rows, joined transitively); the first row of a group is kept. Exact
    duplicates are included: callers that already drop them can ignore those rows."""
    n = len(ids)
    if n < 2:
        return []
    codes = _codes(labels)[0] if labels is not None else np.zeros(n, dtype=np.int64)
    idx, sim = knn(emb, rank, seed=seed)
    a = np.repeat(np.arange(n), idx.shape[1])
    b, s = idx.ravel(), sim.ravel()
    keep = (b >= 0) & (s >= threshold) & (codes[a] == codes[np.clip(b, 0, None)])
    a, b, s = a[keep], b[keep], s[keep]
    if len(a) == 0:
        return []
    comp = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)[1]
    sizes = np.bincount(comp)
    out = []
    for c in np.flatnonzero(sizes >= 2):
        members = np.flatnonzero(comp == c)
        inside = s[comp[a] == c]
        label = None if labels is None else str(labels[members[0]])
        out.append(DuplicateGroup(label=label, keep=ids[members[0]], drop=[ids[m] for m in members[1:]],
                                  similarity_min=round(float(inside.min()), 4)))
    out.sort(key=lambda g: (-len(g.drop), str(g.keep)))
    return out
