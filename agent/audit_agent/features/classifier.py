"""TF-IDF word+char features, a fast linear text classifier, and cross-validated out-of-fold
probabilities of the training labels.

The model is a one-vs-rest linear SVM (liblinear) on word 1-2-grams + char_wb 2-5-grams (sublinear
tf). Its decision scores become probabilities through a softmax whose temperature is fitted on the
out-of-fold scores (minimum log-loss), so the probabilities are calibrated on held-out rows.
Folds run in parallel threads (liblinear releases the GIL). To keep large inputs fast, each fold
fits on at most `max_train_rows` training rows (a stratified sample); every row is still scored
exactly once, by the fold that held it out.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC

from audit_agent.dataset import Dataset

DEFAULT_TEMPERATURE = 0.12
MAX_TRAIN_ROWS = 15_000
TEMPERATURE_ROWS = 20_000
_TEMPERATURES = np.geomspace(0.02, 1.0, 40)


def make_vectorizer() -> FeatureUnion:
    """Word 1-2-gram + char_wb 2-5-gram TF-IDF (sublinear tf, float32)."""
    return FeatureUnion([
        ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=200_000,
                                 dtype=np.float32)),
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2,
                                 max_features=300_000, dtype=np.float32)),
    ])


def _make_model(seed: int) -> LinearSVC:
    return LinearSVC(C=0.5, tol=1e-2, max_iter=200, random_state=seed)


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Row-wise softmax of `scores / temperature`; -inf scores get probability 0."""
    z = scores / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _full_scores(model: LinearSVC, X: sp.csr_matrix, columns: Sequence[Any]) -> np.ndarray:
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
    """The same featuriser + model as the out-of-fold run, fitted on one set to predict another."""

    seed: int = 0
    temperature: float = DEFAULT_TEMPERATURE
    classes: list[str] = field(default_factory=list)
    _vec: FeatureUnion | None = None
    _model: LinearSVC | None = None

    def fit(self, texts: Sequence[str], labels: Sequence[Any]) -> TextClassifier:
        """Fit on `labels` (any hashable values; names are kept as `str`)."""
        labels = [str(_key(v)) for v in labels]
        self.classes = sorted(set(labels))
        if len(self.classes) < 2:
            raise ValueError("need at least two classes to fit a classifier")
        self._vec = make_vectorizer()
        X = self._vec.fit_transform(texts)
        lookup = {c: i for i, c in enumerate(self.classes)}
        self._model = _make_model(self.seed).fit(X, np.array([lookup[v] for v in labels]))
        return self

    def decision(self, texts: Sequence[str]) -> np.ndarray:
        assert self._vec is not None and self._model is not None, "fit first"
        return _full_scores(self._model, self._vec.transform(list(texts)), range(len(self.classes)))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return softmax(self.decision(texts), self.temperature)

    def predict(self, texts: Sequence[str]) -> list[str]:
        idx = self.decision(texts).argmax(axis=1)
        return [self.classes[i] for i in idx]


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
    scores: np.ndarray
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


def out_of_fold(ds: Dataset, *, folds: int, seed: int, max_train_rows: int = MAX_TRAIN_ROWS) -> OOFResult:
    """Cross-validated out-of-fold class probabilities for every row of `ds.frame`."""
    import time

    start = time.perf_counter()
    labels = ds.frame["label"] if "label" in ds.frame.columns else None
    if labels is None or not ds.has_labels:
        raise ValueError("out-of-fold probabilities need labels")
    classes = sorted(labels.dropna().astype(str).unique().tolist())
    if len(classes) < 2:
        raise ValueError("out-of-fold probabilities need at least two labels")
    lookup = {c: i for i, c in enumerate(classes)}
    given = np.array([lookup.get(str(v), -1) if v is not None and v == v else -1 for v in labels],
                     dtype=np.int64)
    folds = max(2, min(folds, int((given >= 0).sum())))
    fold, notes = _assign_folds(given, folds, seed)
    X = make_vectorizer().fit_transform(ds.texts).tocsr()
    k = len(classes)
    scores = np.full((len(given), k), -np.inf)
    rng = np.random.default_rng(seed)
    plans = []
    for f in range(folds):
        train = np.flatnonzero((fold != f) & (given >= 0))
        test = np.flatnonzero(fold == f)
        if len(test):
            plans.append((_cap(train, given, max_train_rows, rng), test))

    def run(plan: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        train, test = plan
        if len(np.unique(given[train])) < 2:  # degenerate fold: predict the class prior
            prior = np.log(np.bincount(given[train], minlength=k) + 1e-3)
            return test, np.tile(prior, (len(test), 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # liblinear convergence warnings on tiny folds
            model = _make_model(seed).fit(X[train], given[train])
        return test, _full_scores(model, X[test], range(k))

    with ThreadPoolExecutor(max_workers=2) as pool:
        for test, s in pool.map(run, plans):
            scores[test] = s
    temperature = fit_temperature(scores, given)
    probs = softmax(scores, temperature)
    return OOFResult(classes=classes, probs=probs, given=given, scores=scores, temperature=temperature,
                     fold=fold, X=X, seconds=time.perf_counter() - start, notes=notes)
