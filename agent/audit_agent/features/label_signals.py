"""Per-row label-issue signals from the out-of-fold classifier results: `detect_label_issues` is the
one detector (the `label_issue` check reads it through `Features.label_issues`, bench/quality.py calls
it directly). It combines two views cleanlab does not combine:
- the calibrated out-of-fold probability of the given label (self-confidence), and
- a nearest-neighbour vote in TF-IDF space: is the row closer to the rows labelled with the
  suggested label than to the rows labelled with its own label (top-k mean cosine similarity)?
score = mean(1 - p(given), p_knn(suggested)); a row is flagged when score >= threshold. With
sentence embeddings passed in, p_knn combines the TF-IDF vote with the same vote in embedding space
(`features.semantic.neighbour_label_margin`): the larger of the two, or their mean. The
threshold is set high to favour precision (cleanlab's weak side). cleanlab's `find_label_issues`
(prune_by_noise_rate) runs on the same probabilities as the reference and is reported per row.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from audit_agent.features.classifier import OOFResult

ISSUE_THRESHOLD = 0.99
KNN_K = 5
KNN_TEMPERATURE = 0.05
MAX_CANDIDATES = 30_000
CHUNK_ROWS = 50_000
CLEANLAB_MAX_ROWS = 100_000


@dataclass
class LabelIssues:
    """Per-row arrays (aligned with the OOF rows) from `detect_label_issues`."""

    score: np.ndarray
    flagged: np.ndarray
    suggested: np.ndarray
    p_given: np.ndarray
    p_suggested: np.ndarray
    p_knn: np.ndarray
    cleanlab: np.ndarray
    threshold: float
    p_embedding: np.ndarray | None = None

    def ranked(self) -> np.ndarray:
        """Flagged row positions, most suspicious first."""
        idx = np.flatnonzero(self.flagged)
        return idx[np.argsort(-self.score[idx], kind="stable")]


def _class_similarity(X: sp.csr_matrix, rows: np.ndarray, cls: np.ndarray, given: np.ndarray,
                      n_classes: int, k: int) -> np.ndarray:
    """Mean of the top-k cosine similarities of each row in `rows` to the rows labelled `cls[row]`
    (the row itself excluded). Work is grouped by class, so it is |rows| x class size, not n^2."""
    out = np.zeros(len(rows))
    by_class = np.argsort(given, kind="stable")
    bounds = np.searchsorted(given[by_class], np.arange(n_classes + 1))
    for c in np.unique(cls):
        members = by_class[bounds[c]:bounds[c + 1]]
        sel = np.flatnonzero(cls == c)
        if len(members) == 0:
            continue
        q = rows[sel]
        sims = (X[q] @ X[members].T).toarray()
        sims[q[:, None] == members[None, :]] = -np.inf
        kk = min(k, len(members))
        top = -np.partition(-sims, kk - 1, axis=1)[:, :kk]
        top[~np.isfinite(top)] = np.nan
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            vals = np.nanmean(top, axis=1) if top.size else np.zeros(len(sel))
        out[sel] = np.nan_to_num(vals, nan=0.0)
    return out


def _cleanlab_flags(oof: OOFResult) -> np.ndarray:
    """cleanlab's find_label_issues (prune_by_noise_rate) on the same out-of-fold probabilities."""
    from cleanlab.filter import find_label_issues

    flags = np.zeros(len(oof.given), dtype=bool)
    m = oof.labelled
    if m.sum() > CLEANLAB_MAX_ROWS:  # its n x k float64 copies: a seeded sample keeps memory bounded
        keep = np.random.default_rng(0).choice(np.flatnonzero(m), CLEANLAB_MAX_ROWS, replace=False)
        m = np.zeros_like(m)
        m[keep] = True
    present = np.unique(oof.given[m])
    if m.sum() < 10 or len(present) < 2:
        return flags
    # cleanlab wants every class column to occur among the labels: restrict to present classes
    probs = oof.probs[m][:, present].astype(np.float64)
    probs /= np.clip(probs.sum(axis=1, keepdims=True), 1e-12, None)
    remap = np.searchsorted(present, oof.given[m])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "too few examples in class" notes on small labels
            found = find_label_issues(remap, probs, filter_by="prune_by_noise_rate",
                                      return_indices_ranked_by="self_confidence", n_jobs=1)
    except Exception:  # cleanlab refuses degenerate inputs; the reference is then simply absent
        return flags
    flags[np.flatnonzero(m)[found]] = True
    return flags


def detect_label_issues(oof: OOFResult, *, threshold: float = ISSUE_THRESHOLD, with_cleanlab: bool = True,
                        embeddings: np.ndarray | None = None, embedding_rows: np.ndarray | None = None,
                        embedding_mode: str = "either") -> LabelIssues:
    """Score every labelled row for a wrong label and flag the ones at or above `threshold`.
    `embeddings` (L2-normalised, one row per OOF row, or per position in `embedding_rows` when a
    sample was embedded) add the embedding-neighbour vote for the rows they cover: with
    `embedding_mode` "either" the neighbour signal is the larger of the TF-IDF and embedding votes
    (either kind of neighbour may back the classifier), with "both" their mean (both must)."""
    n, k = oof.probs.shape
    rows = np.arange(n)
    given = oof.given
    safe_given = np.clip(given, 0, None)
    probs = oof.probs
    p_given = np.where(given >= 0, probs[rows, safe_given].astype(np.float64), 1.0)
    suggested = np.empty(n, dtype=np.int64)
    for start in range(0, n, CHUNK_ROWS):  # best other label, without an n x k float64 copy
        block = np.array(probs[start:start + CHUNK_ROWS], dtype=np.float32)
        block[np.arange(len(block)), safe_given[start:start + CHUNK_ROWS]] = -1.0
        suggested[start:start + len(block)] = block.argmax(axis=1)
    p_suggested = probs[rows, suggested].astype(np.float64)
    p_knn = np.zeros(n)
    cand = np.flatnonzero((given >= 0) & (p_given < 0.5))
    if len(cand) > MAX_CANDIDATES:
        cand = cand[np.argsort(p_given[cand], kind="stable")[:MAX_CANDIDATES]]
    if len(cand):
        sim_given = _class_similarity(oof.X, cand, given[cand], given, k, KNN_K)
        sim_sugg = _class_similarity(oof.X, cand, suggested[cand], given, k, KNN_K)
        p_knn[cand] = 1.0 / (1.0 + np.exp(-(sim_sugg - sim_given) / KNN_TEMPERATURE))
    p_emb = None
    if embeddings is not None and len(cand):
        from audit_agent.features.semantic import embedding_vote

        p_emb = embedding_vote(embeddings, given, suggested, cand, embedding_rows)
        rows = cand[~np.isnan(p_emb[cand])]
        p_knn[rows] = (np.maximum(p_knn[rows], p_emb[rows]) if embedding_mode == "either"
                       else 0.5 * (p_knn[rows] + p_emb[rows]))
    score = np.where(given >= 0, 0.5 * (1.0 - p_given) + 0.5 * p_knn, 0.0)
    flagged = (score >= threshold) & (given >= 0)
    cleanlab = _cleanlab_flags(oof) if with_cleanlab else np.zeros(n, dtype=bool)
    return LabelIssues(score=score, flagged=flagged, suggested=suggested, p_given=p_given,
                       p_suggested=p_suggested, p_knn=p_knn, cleanlab=cleanlab, threshold=threshold,
                       p_embedding=p_emb)
