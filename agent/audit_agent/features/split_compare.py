"""How two splits differ, as measured for the real-gap checks: per-split style statistics and their
distance, a cross-validated classifier's ability to tell two sets of rows apart (on words + style and
on style alone), and each query row's nearest training row by bag-of-words cosine."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import RepeatedStratifiedKFold
from sklearn.preprocessing import StandardScaler, normalize

from audit_agent.dataset import Dataset
from audit_agent.features.style import as_arrow, word_tokens
from audit_agent.findings import Record

TRAIN_PER_REAL = 4
MAX_SIDE_ROWS = 500
MAX_ROWS_A = 1500
MIN_ROWS_FOR_AUC = 10
MAX_REFERENCE_ROWS = 1_000_000
LEAST_COVERED = 10
_STYLE_FEATURES = ["n_chars", "n_words", "is_short", "all_lowercase", "starts_capitalised", "no_end_punct",
                   "no_punct", "n_questions", "typo_rate", "multi_intent", "n_exclaim", "caps_words",
                   "emotional", "indirect_request", "formal", "polish"]
# stat name -> (style column, aggregation)
_STATS: dict[str, tuple[str, str]] = {
    "mean_chars": ("n_chars", "mean"), "median_chars": ("n_chars", "median"),
    "mean_words": ("n_words", "mean"), "median_words": ("n_words", "median"),
    "share_short": ("is_short", "mean"), "share_all_lowercase": ("all_lowercase", "mean"),
    "share_starts_capitalised": ("starts_capitalised", "mean"), "share_no_end_punct": ("no_end_punct", "mean"),
    "share_no_punct": ("no_punct", "mean"), "mean_typo_rate": ("typo_rate", "mean"),
    "share_with_typo": ("has_typo", "mean"), "share_multi_intent": ("multi_intent", "mean"),
    "share_emotional": ("emotional", "mean"), "share_indirect": ("indirect_request", "mean"),
    "mean_polish": ("polish", "mean"),
}


class Separability(Record):
    """How well a classifier tells two sets of rows apart (cross-validated ROC AUC); also the record
    the real-gap findings keep (`rounded`)."""

    auc: float
    auc_std: float
    style_auc: float
    style_auc_std: float
    n_a: int
    n_b: int
    folds: int
    repeats: int

    def rounded(self) -> Separability:
        """The same scores with the AUCs rounded to 4 places, as findings keep them."""
        return self.model_copy(update={name: round(getattr(self, name), 4)
                                       for name in ("auc", "auc_std", "style_auc", "style_auc_std")})


def _sample(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, size=k, replace=False)) if k < n else np.arange(n)


def _style_matrix(style: pd.DataFrame) -> np.ndarray:
    x = style[_STYLE_FEATURES].astype(float).to_numpy()
    x[:, :2] = np.log1p(x[:, :2])
    return x


def separability(texts_a: list[str], style_a: pd.DataFrame, texts_b: list[str], style_b: pd.DataFrame,
                 seed: int, ratio: int = TRAIN_PER_REAL) -> Separability | None:
    """Repeated stratified CV AUC of a/b classifiers on TF-IDF char n-grams + style features, and on
    style features alone. Set a is subsampled to at most `ratio` x |b| rows. None when too few rows."""
    rng = np.random.default_rng(seed)
    ib = _sample(len(texts_b), MAX_SIDE_ROWS, rng)
    ia = _sample(len(texts_a), min(len(ib) * ratio, MAX_ROWS_A), rng)
    if len(ia) < MIN_ROWS_FOR_AUC or len(ib) < MIN_ROWS_FOR_AUC:
        return None
    texts = [texts_a[i] for i in ia] + [texts_b[i] for i in ib]
    y = np.r_[np.zeros(len(ia), int), np.ones(len(ib), int)]
    style = np.vstack([_style_matrix(style_a.iloc[ia]), _style_matrix(style_b.iloc[ib])])
    style = StandardScaler().fit_transform(style)
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, lowercase=False,
                           min_df=2, max_features=20_000, dtype=np.float32).fit_transform(texts)
    combined = sp.hstack([char, sp.csr_matrix(style * 0.5)]).tocsr()
    folds = int(min(5, len(ib), len(ia)))
    repeats = 5 if len(ib) < 100 else (2 if len(ib) < 300 else 1)
    cv = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    aucs: list[float] = []
    style_aucs: list[float] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for tr, te in cv.split(style, y):
            for X, out in ((combined, aucs), (style, style_aucs)):
                model = LogisticRegression(C=1.0, solver="liblinear", max_iter=200, class_weight="balanced")
                model.fit(X[tr], y[tr])
                out.append(float(roc_auc_score(y[te], model.decision_function(X[te]))))
    return Separability(auc=float(np.mean(aucs)), auc_std=float(np.std(aucs)), style_auc=float(np.mean(style_aucs)),
                        style_auc_std=float(np.std(style_aucs)), n_a=len(ia), n_b=len(ib), folds=folds,
                        repeats=repeats)


def style_stats(style: pd.DataFrame) -> dict[str, float]:
    """The side-by-side statistics of one split."""
    return {name: round(float(getattr(style[col].astype(float), agg)()), 4) if len(style) else 0.0
            for name, (col, agg) in _STATS.items()}


def style_distance(a: dict[str, float], b: dict[str, float]) -> float:
    """Mean per-statistic difference: absolute for shares, relative for lengths (0 = same style)."""
    diffs = []
    for name in _STATS:
        x, y = a[name], b[name]
        if name.startswith(("mean_chars", "median_chars", "mean_words", "median_words")):
            diffs.append(abs(x - y) / max(abs(x), abs(y), 1e-9))
        elif name == "mean_typo_rate":
            diffs.append(min(1.0, abs(x - y) * 4))
        else:
            diffs.append(abs(x - y))
    return float(np.mean(diffs))


def bag_of_words(reference: list[str], queries: list[str]) -> tuple[sp.csr_matrix, sp.csr_matrix, frozenset[str]]:
    """L2-normalised TF-IDF rows (word unigrams + bigrams, sublinear tf, idf from `reference`) for
    the reference and query texts, built straight from the pyarrow tokens (no Python loop per row),
    and the distinct words of the reference texts."""
    arr = pa.concat_arrays([as_arrow(reference), as_arrow(queries)])
    tokens, rows = word_tokens(pc.utf8_lower(arr))
    keep = pc.greater(pc.utf8_length(tokens), 0).to_numpy(zero_copy_only=False)
    encoded = pc.dictionary_encode(tokens)
    codes = encoded.indices.to_numpy(zero_copy_only=False)[keep].astype(np.int64)
    rows = rows[keep]
    n_ref, n_all = len(reference), len(reference) + len(queries)
    vocab = int(codes.max()) + 1 if codes.size else 0
    in_ref = np.flatnonzero(np.bincount(codes[rows < n_ref], minlength=vocab) > 0)
    words = encoded.dictionary.to_pylist()
    ref_words = frozenset(words[i] for i in in_ref.tolist())
    same_row = rows[1:] == rows[:-1]
    bigram_codes, _ = pd.factorize(codes[:-1][same_row] * max(vocab, 1) + codes[1:][same_row])
    cols = np.concatenate([codes, vocab + bigram_codes])
    rws = np.concatenate([rows, rows[:-1][same_row]])
    n_cols = vocab + (int(bigram_codes.max()) + 1 if bigram_codes.size else 0)
    m = sp.csr_matrix((np.ones(len(cols), np.float32), (rws, cols)), shape=(n_all, max(n_cols, 1)))
    m.sum_duplicates()
    m.data = 1.0 + np.log(m.data)
    df = np.bincount(m[:n_ref].indices, minlength=m.shape[1])
    idf = (np.log((1.0 + n_ref) / (1.0 + df)) + 1.0).astype(np.float32)
    m = normalize(m @ sp.diags(idf), norm="l2", copy=False).tocsr()
    return m[:n_ref], m[n_ref:], ref_words


def nearest_train(train: Dataset, queries: list[str],
                  seed: int) -> tuple[np.ndarray, np.ndarray, int, frozenset[str]]:
    """For each query, the most similar training row (position) and its TF-IDF cosine similarity;
    also how many training rows were searched and their distinct words. Training sets above
    MAX_REFERENCE_ROWS are searched through a seeded sample of that size."""
    idx = _sample(len(train), MAX_REFERENCE_ROWS, np.random.default_rng(seed))
    texts = train.frame["text"].astype(str).to_numpy()
    X, Q, ref_words = bag_of_words([texts[i] for i in idx] if len(idx) < len(train) else list(texts), queries)
    best = np.zeros(len(queries), dtype=np.float32)
    arg = np.zeros(len(queries), dtype=int)
    chunk = 100_000
    XT = X.T.tocsc()
    for start in range(0, X.shape[0], chunk):
        for qs in range(0, Q.shape[0], 500):
            sims = (Q[qs:qs + 500] @ XT[:, start:start + chunk]).toarray()
            if sims.size == 0:
                continue
            j = sims.argmax(axis=1)
            v = sims[np.arange(len(j)), j]
            better = v > best[qs:qs + 500]
            best[qs:qs + 500][better] = v[better]
            arg[qs:qs + 500][better] = j[better] + start
    return idx[arg], best, len(idx), ref_words
