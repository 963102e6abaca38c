"""TF-IDF word+char features, a fast linear text classifier, and cross-validated out-of-fold
probabilities of the training labels.

Up to `LARGE_ROWS` rows: a one-vs-rest linear SVM (liblinear) on word 1-2-grams + char_wb
2-5-grams (sublinear tf, vocabulary fitted on all rows). Above that, the features are hashed
(HashingVectorizer: no vocabulary to build or hold; word 1-2 + char_wb 3-4, idf from all rows) and
the model is a linear SVM trained by SGD (hinge loss, 5 epochs), and 3 folds suffice (each fold's
training rows are capped anyway), which keeps 100k rows within seconds and 1M rows within memory. Each fold fits on at most `max_train_rows` training rows (a
stratified sample) restricted to the feature columns those rows use; every row is still scored
exactly once, by the fold that held it out. Decision scores become probabilities through a softmax
whose temperature is fitted on the out-of-fold scores (minimum log-loss), so they are calibrated on
held-out rows. Large-path (SGD) folds run in parallel threads; liblinear folds run one after another
(its RNG is process-wide, so parallel folds would not be reproducible).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC

if TYPE_CHECKING:
    from audit_agent.dataset import Dataset


DEFAULT_TEMPERATURE = 0.12
MAX_TRAIN_ROWS = 15_000
LARGE_ROWS = 30_000
LARGE_FOLDS = 3
TEMPERATURE_ROWS = 20_000
PREDICT_CHUNK = 50_000
HASH_FEATURES = 2**20
HASH_CHUNK = 100_000
_TEMPERATURES = np.geomspace(0.02, 1.0, 40)

LinearModel: TypeAlias = LinearSVC | SGDClassifier


def _word_vectorizer(min_df: int) -> TfidfVectorizer:
    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=min_df, max_features=200_000,
                           dtype=np.float32)


def _char_vectorizer(min_df: int) -> TfidfVectorizer:
    return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=min_df,
                           max_features=300_000, dtype=np.float32)


def make_vectorizer() -> FeatureUnion:
    """Word 1-2-gram + char_wb 2-5-gram TF-IDF (sublinear tf, float32)."""
    return FeatureUnion([("word", _word_vectorizer(2)), ("char", _char_vectorizer(2))])


class TextFeatures:
    """`make_vectorizer`'s features, robust to tiny inputs: a part whose n-grams never repeat falls back
    to min_df=1, and a part with no n-grams at all (e.g. punctuation-only words) is left out."""

    def __init__(self) -> None:
        self.parts: list[TfidfVectorizer] = []

    def fit_transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        texts = list(texts)
        blocks = []
        for factory in (_word_vectorizer, _char_vectorizer):
            for min_df in (2, 1):
                vec = factory(min_df)
                try:
                    blocks.append(vec.fit_transform(texts))
                except ValueError:  # "no terms remain" / "empty vocabulary"
                    continue
                self.parts.append(vec)
                break
        if not blocks:
            raise ValueError("no word or character n-grams in the texts")
        return sp.hstack(blocks, format="csr", dtype=np.float32)

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        texts = list(texts)
        return sp.hstack([v.transform(texts) for v in self.parts], format="csr", dtype=np.float32)


class HashedFeatures:
    """Hashed word 1-2 + char_wb 3-4-gram TF-IDF (sublinear tf, idf from the fitted texts), each part
    l2-normalised like `make_vectorizer`'s; no vocabulary, so memory stays linear in the rows."""

    PARTS: tuple[dict[str, Any], ...] = ({"ngram_range": (1, 2)}, {"analyzer": "char_wb", "ngram_range": (3, 4)})

    def __init__(self) -> None:
        self.idf: list[np.ndarray] = []

    def _block(self, texts: list[str], part: int) -> sp.csr_matrix:
        X = HashingVectorizer(n_features=HASH_FEATURES, alternate_sign=False, norm=None, dtype=np.float32,
                              **self.PARTS[part]).transform(texts).tocsr()
        np.log(X.data, out=X.data)
        X.data += 1.0
        return X

    def fit_transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        texts = list(texts)
        chunks = [[self._block(texts[i:i + HASH_CHUNK], part) for part in range(len(self.PARTS))]
                  for i in range(0, len(texts), HASH_CHUNK)]  # chunked: no whole-input intermediates
        for part in range(len(self.PARTS)):
            df = sum(np.bincount(c[part].indices, minlength=HASH_FEATURES) for c in chunks)
            self.idf.append((np.log((1.0 + len(texts)) / (1.0 + df)) + 1.0).astype(np.float32))
        stacked = []
        while chunks:  # weigh and join chunk by chunk, releasing each chunk's parts as we go
            parts = chunks.pop(0)
            stacked.append(sp.hstack([self._weigh(X, p) for p, X in enumerate(parts)], format="csr",
                                     dtype=np.float32))
        return sp.vstack(stacked, format="csr")

    def _weigh(self, X: sp.csr_matrix, part: int) -> sp.csr_matrix:
        X.data *= self.idf[part][X.indices]
        return normalize(X, copy=False)

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        texts = list(texts)
        return sp.hstack([self._weigh(self._block(texts, part), part) for part in range(len(self.idf))],
                         format="csr", dtype=np.float32)


def hashed_features(texts: Sequence[str]) -> sp.csr_matrix:
    """`HashedFeatures` fitted on and applied to `texts`."""
    return HashedFeatures().fit_transform(texts)


def _make_model(seed: int, large: bool = False) -> LinearModel:
    if large:
        return SGDClassifier(loss="hinge", alpha=1e-5, max_iter=5, tol=None, random_state=seed)
    return LinearSVC(C=0.5, tol=1e-2, max_iter=200, random_state=seed)


def softmax(scores: np.ndarray, temperature: float, out: np.ndarray | None = None) -> np.ndarray:
    """Row-wise softmax of `scores / temperature` (float32, computed in chunks); -inf gets 0. `out`
    may be `scores` itself (float32) to convert in place."""
    if out is None:
        out = np.empty(scores.shape, dtype=np.float32)
    for start in range(0, len(scores), PREDICT_CHUNK):
        z = scores[start:start + PREDICT_CHUNK].astype(np.float64) / temperature
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        out[start:start + PREDICT_CHUNK] = z
    return out


def _full_scores(model: LinearModel, X: sp.csr_matrix, columns: Sequence[Any]) -> np.ndarray:
    """Decision scores with one column per entry of `columns` (the class values in output order, as
    the model was fitted on them: codes or names); classes the model never saw get -inf."""
    column_of = {_key(c): i for i, c in enumerate(columns)}
    out = np.full((X.shape[0], len(columns)), -np.inf, dtype=np.float64)
    dec = model.decision_function(X)
    if dec.ndim == 1:  # binary model: one column, positive = classes_[1]
        dec = np.column_stack([-dec, dec])
    out[:, [column_of[_key(c)] for c in model.classes_]] = dec
    return out


def _key(value: Any) -> Any:
    """A hashable, type-normalised class key (numpy scalars become Python ones)."""
    return value.item() if isinstance(value, np.generic) else value


def fit_temperature(scores: np.ndarray, given: np.ndarray) -> float:
    """The softmax temperature that minimises the log-loss of the given labels (rows with given >= 0)."""
    rows = np.flatnonzero(given >= 0)
    if len(rows) < 2:
        return DEFAULT_TEMPERATURE
    if len(rows) > TEMPERATURE_ROWS:  # a sample is plenty to fit one number
        rows = np.random.default_rng(0).choice(rows, TEMPERATURE_ROWS, replace=False)
    s, g = scores[rows], given[rows]
    best, best_loss = DEFAULT_TEMPERATURE, np.inf
    for t in _TEMPERATURES:
        p = softmax(s, float(t))[np.arange(len(g)), g]
        loss = -np.mean(np.log(np.clip(p, 1e-9, 1.0)))
        if loss < best_loss:
            best, best_loss = float(t), loss
    return best


@dataclass
class TextClassifier:
    """The same featuriser + model as the out-of-fold run, fitted on one set to predict another.
    `large=True` selects the large-input path (hashed features, SGD-trained linear SVM, columns the
    training rows use at least twice)."""

    seed: int = 0
    temperature: float = DEFAULT_TEMPERATURE
    large: bool = False
    classes: list[str] = field(default_factory=list)
    _vec: TextFeatures | HashedFeatures | None = None
    _model: LinearModel | None = None
    _cols: np.ndarray | None = None

    def fit(self, texts: Sequence[str], labels: Sequence[Any]) -> TextClassifier:
        """Fit on `labels` (any hashable values; names are kept as `str`)."""
        labels = [str(_key(v)) for v in labels]
        self.classes = sorted(set(labels))
        if len(self.classes) < 2:
            raise ValueError("need at least two classes to fit a classifier")
        self._vec = HashedFeatures() if self.large else TextFeatures()
        X = self._vec.fit_transform(texts)
        counts = np.bincount(X.indices, minlength=X.shape[1])
        self._cols = np.flatnonzero(counts >= (2 if self.large else 1))
        if len(self._cols) == 0:
            self._cols = np.flatnonzero(counts)
        lookup = {c: i for i, c in enumerate(self.classes)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings (few SGD epochs, tiny inputs)
            self._model = _make_model(self.seed, self.large).fit(X[:, self._cols],
                                                                 np.array([lookup[v] for v in labels]))
        return self

    def decision(self, texts: Sequence[str]) -> np.ndarray:
        assert self._vec is not None and self._model is not None and self._cols is not None, "fit first"
        X = self._vec.transform(list(texts))[:, self._cols]
        return _full_scores(self._model, X, range(len(self.classes)))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return softmax(self.decision(texts), self.temperature)

    def predict(self, texts: Sequence[str]) -> list[str]:
        idx = self.decision(texts).argmax(axis=1)
        return [self.classes[int(i)] for i in idx]


@dataclass
class OOFResult:
    """Out-of-fold probabilities aligned with `ds.frame` rows.

    `given[i]` is the index in `classes` of row i's label, -1 when the row has no label (such rows
    are never fitted on, but are still scored). `X` is the TF-IDF matrix of all rows (reused by the
    label checks), `fold[i]` the fold that scored row i.
    """

    classes: list[str]
    probs: np.ndarray
    given: np.ndarray
    scores: np.ndarray | None
    temperature: float
    fold: np.ndarray
    X: sp.csr_matrix
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    @property
    def labelled(self) -> np.ndarray:
        return self.given >= 0

    def accuracy(self) -> float:
        m = self.labelled
        return float((self.predicted[m] == self.given[m]).mean()) if m.any() else float("nan")


def _assign_folds(given: np.ndarray, folds: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Stratified fold ids for labelled rows; rare classes (< folds members) and unlabelled rows are
    spread round-robin so StratifiedKFold never sees a class it cannot split."""
    notes: list[str] = []
    n = len(given)
    fold = np.full(n, -1, dtype=np.int64)
    rng = np.random.default_rng(seed)
    counts = np.bincount(given[given >= 0], minlength=max(int(given.max()) + 1, 1)) if n else np.array([])
    common = (given >= 0) & (counts[np.clip(given, 0, None)] >= folds) if n else np.zeros(0, bool)
    idx = np.flatnonzero(common)
    if len(idx) >= folds and len(np.unique(given[idx])) >= 2:
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for f, (_, test) in enumerate(skf.split(np.zeros(len(idx)), given[idx])):
            fold[idx[test]] = f
    rest = np.flatnonzero(fold < 0)
    fold[rest] = rng.permutation(len(rest)) % folds
    rare = int(((counts > 0) & (counts < folds)).sum()) if len(counts) else 0
    if rare:
        notes.append(f"{rare} labels have fewer than {folds} rows: their rows are scored by models "
                     "that saw fewer (or no) examples of them")
    return fold, notes


def _cap(train_idx: np.ndarray, given: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """At most `cap` training rows, sampled so each class keeps its share (and >= 1 row)."""
    if len(train_idx) <= cap:
        return train_idx
    keep = rng.random(len(train_idx)) < cap / len(train_idx)
    first = np.unique(given[train_idx], return_index=True)[1]
    keep[first] = True
    return train_idx[keep]


def _fold_scores(X: sp.csr_matrix, given: np.ndarray, train: np.ndarray, test: np.ndarray, k: int, seed: int,
                 large: bool) -> np.ndarray:
    """float32 decision scores of the `test` rows from a model fitted on the `train` rows, on the
    feature columns the training rows use (at least twice on the large path; an unused column gets a
    zero weight anyway, so dropping it only saves time)."""
    def prior() -> np.ndarray:  # a degenerate fold: predict the class prior
        return np.tile(np.log(np.bincount(given[train], minlength=k) + 1e-3).astype(np.float32), (len(test), 1))

    if len(np.unique(given[train])) < 2:
        return prior()
    X_train = X[train]
    cols = np.flatnonzero(np.bincount(X_train.indices, minlength=X.shape[1]) >= (2 if large else 1))
    if len(cols) == 0:
        cols = np.unique(X_train.indices)
    if len(cols) == 0:  # no training row has a single feature (e.g. only blank or control-character texts)
        return prior()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings on tiny folds / few SGD epochs
        model = _make_model(seed, large).fit(X_train[:, cols], given[train])
    out = np.empty((len(test), k), dtype=np.float32)
    for start in range(0, len(test), PREDICT_CHUNK):
        rows = test[start:start + PREDICT_CHUNK]
        out[start:start + len(rows)] = _full_scores(model, X[rows][:, cols], range(k))
    return out


def out_of_fold(ds: Dataset, *, folds: int, seed: int, max_train_rows: int = MAX_TRAIN_ROWS,
                large_rows: int = LARGE_ROWS) -> OOFResult:
    """Cross-validated out-of-fold class probabilities for every row of `ds.frame`."""
    start = time.perf_counter()
    labels = ds.frame["label"] if "label" in ds.frame.columns else None
    if labels is None or not ds.has_labels:
        raise ValueError("out-of-fold probabilities need labels")
    classes = sorted(labels.dropna().astype(str).unique().tolist())
    if len(classes) < 2:
        raise ValueError("out-of-fold probabilities need at least two labels")
    codes = {c: i for i, c in enumerate(classes)}
    given = np.full(len(labels), -1, dtype=np.int64)
    present = labels.notna().to_numpy()
    given[present] = labels[present].astype(str).map(codes).to_numpy(dtype=np.int64)
    n_labelled = int((given >= 0).sum())
    folds = max(2, min(folds, n_labelled))
    large = len(given) > large_rows
    if large and n_labelled * (LARGE_FOLDS - 1) / LARGE_FOLDS >= max_train_rows:
        folds = min(folds, LARGE_FOLDS)  # the cap binds anyway: fewer fits, same training size each
    fold, notes = _assign_folds(given, folds, seed)
    X = hashed_features(ds.texts) if large else TextFeatures().fit_transform(ds.texts)
    if large:
        notes.append(f"{len(given)} rows: hashed word+char features and an SGD-trained linear SVM, "
                     f"{folds} folds, each fitted on at most {max_train_rows} rows")
    k = len(classes)
    scores = np.empty((len(given), k), dtype=np.float32)
    rng = np.random.default_rng(seed)
    plans = []
    for f in range(folds):
        train = np.flatnonzero((fold != f) & (given >= 0))
        test = np.flatnonzero(fold == f)
        if len(test):
            plans.append((_cap(train, given, max_train_rows, rng), test))

    def run(plan: tuple[np.ndarray, np.ndarray]) -> None:
        train, test = plan
        scores[test] = _fold_scores(X, given, train, test, k, seed, large)

    # liblinear (LinearSVC) seeds one process-wide RNG, so its folds in parallel threads would make the
    # probabilities depend on thread timing; SGD has its own RNG per model and may run in parallel.
    with ThreadPoolExecutor(max_workers=2 if large else 1) as pool:
        list(pool.map(run, plans))
    temperature = fit_temperature(scores, given)
    kept_scores = None if large else scores.copy()  # n x k floats: not kept on the large path
    probs = softmax(scores, temperature, out=scores)
    return OOFResult(classes=classes, probs=probs, given=given, scores=kept_scores, temperature=temperature,
                     fold=fold, X=X, seconds=time.perf_counter() - start, notes=notes)
