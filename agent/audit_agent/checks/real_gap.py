"""The synthetic-vs-real gap: does the training set (and the eval set) look like the real traffic?

- `real_gap`: side-by-side style statistics, vocabulary overlap, a cross-validated classifier that
  tells training rows from real rows (AUC near 0.5 = indistinguishable, near 1.0 = the training set
  does not look like real traffic), and the real rows least like any training row.
- `eval_too_clean`: the eval set is written like the training set and unlike the real batch, so its
  score says little about real traffic. Judged on style only (style-statistic distances and a
  style-feature eval-vs-real classifier): a difference in topic does not make an eval set clean or messy.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

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

from audit_agent.checks.base import Check
from audit_agent.dataset import AuditContext, Dataset
from audit_agent.features.style import as_arrow, split_style, tokens_by_row, word_tokens
from audit_agent.findings import Evidence, Finding, Record, Severity

AUC_HIGH = 0.9
AUC_MEDIUM = 0.75
EVAL_REAL_STYLE_AUC_HIGH = 0.85
CLOSER_TO_TRAIN = 0.5
MIN_EVAL_REAL_DISTANCE = 0.15
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


@dataclass
class Separability:
    """How well a classifier tells two sets of rows apart (cross-validated ROC AUC)."""

    auc: float
    auc_std: float
    style_auc: float
    style_auc_std: float
    n_a: int
    n_b: int
    folds: int
    repeats: int

    def as_dict(self) -> dict[str, float | int]:
        return {"auc": round(self.auc, 4), "auc_std": round(self.auc_std, 4), "style_auc": round(self.style_auc, 4),
                "style_auc_std": round(self.style_auc_std, 4), "n_a": self.n_a, "n_b": self.n_b,
                "folds": self.folds, "repeats": self.repeats}


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
    return Separability(float(np.mean(aucs)), float(np.std(aucs)), float(np.mean(style_aucs)),
                        float(np.std(style_aucs)), len(ia), len(ib), folds, repeats)


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


def _vocab_overlap(ctx: AuditContext, train_vocab: frozenset[str]) -> dict[str, float]:
    """Share of real tokens (occurrences and distinct) that also occur in the training set."""
    assert ctx.real is not None
    tokens = tokens_by_row(ctx.real.frame["text"].astype(str))
    if tokens.empty:
        return {"token_share_seen": 0.0, "distinct_share_seen": 0.0, "unseen_examples": []}  # type: ignore[dict-item]
    seen = tokens.isin(train_vocab)
    distinct = pd.Series(tokens.unique())
    unseen = distinct[~distinct.isin(train_vocab)]
    return {"token_share_seen": round(float(seen.mean()), 4),
            "distinct_share_seen": round(float(1 - len(unseen) / len(distinct)), 4),
            "unseen_examples": unseen.head(30).tolist()}  # type: ignore[dict-item]


def _severity(auc: float | None) -> Severity:
    if auc is None:
        return Severity.INFO
    if auc >= AUC_HIGH:
        return Severity.HIGH
    return Severity.MEDIUM if auc >= AUC_MEDIUM else Severity.INFO


def _real_gap(ctx: AuditContext) -> list[Finding]:
    """Side-by-side style statistics of train and the real batch, the train-vs-real AUC, and the
    real rows least covered by the training set."""
    assert ctx.real is not None
    real, train, seed = ctx.real, ctx.train, ctx.config.seed
    if len(real) == 0 or len(train) == 0:
        return []
    train_style, real_style = split_style(ctx, "train"), split_style(ctx, "real")
    table = {"train": style_stats(train_style), "real": style_stats(real_style)}
    if ctx.eval is not None and len(ctx.eval):
        table["eval"] = style_stats(split_style(ctx, "eval"))
    sep = separability(train.texts, train_style, real.texts, real_style, seed)
    near_pos, near_sim, n_ref, train_vocab = nearest_train(train, real.texts, seed)
    overlap = _vocab_overlap(ctx, train_vocab)
    order = np.argsort(near_sim, kind="stable")[:LEAST_COVERED]
    train_text, train_ids = train.frame["text"].astype(str).to_numpy(), train.frame["id"].astype(str).to_numpy()
    real_ids = real.frame["id"].astype(str).to_numpy()
    least = [{"real_id": str(real_ids[i]), "real_text": real.texts[i][:300],
              "train_id": str(train_ids[near_pos[i]]), "train_text": str(train_text[near_pos[i]])[:300],
              "similarity": round(float(near_sim[i]), 4)} for i in order]
    t, r = table["train"], table["real"]
    auc_text = (f"a classifier tells train from real rows with AUC {sep.auc:.2f} ± {sep.auc_std:.2f} "
                f"(style features alone {sep.style_auc:.2f})" if sep else
                f"too few real rows for the classifier (need {MIN_ROWS_FOR_AUC})")
    verdict = {Severity.HIGH: "the training set does not look like real traffic",
               Severity.MEDIUM: "the training set is written noticeably unlike real traffic",
               Severity.INFO: "train and real are hard to tell apart" if sep and sep.auc < 0.65
               else "train and real differ a little"}
    severity = _severity(sep.auc if sep else None)
    message = (f"{auc_text}: {verdict.get(severity, '') if sep else 'style statistics only'}. "
               f"Mean words train {t['mean_words']:.1f} vs real {r['mean_words']:.1f}; all lowercase "
               f"{t['share_all_lowercase']:.0%} vs {r['share_all_lowercase']:.0%}; no end punctuation "
               f"{t['share_no_end_punct']:.0%} vs {r['share_no_end_punct']:.0%}; rows with typos "
               f"{t['share_with_typo']:.0%} vs {r['share_with_typo']:.0%}; "
               f"{overlap['token_share_seen']:.0%} of real tokens occur in train")
    return [Finding(
        check="real_gap", severity=severity, split="real", message=message,
        rows=[x["real_id"] for x in least],
        evidence={
            "stats": table, "stat_names": list(_STATS),
            "separability": sep.as_dict() if sep else None,
            "auc_thresholds": {"high": AUC_HIGH, "medium": AUC_MEDIUM},
            "vocabulary": overlap,
            "least_covered": least, "reference_rows": n_ref,
            "mean_nearest_similarity": round(float(near_sim.mean()), 4),
        },
    )]


def judge_eval_cleanliness(d_eval_train: float, d_eval_real: float, eval_real_style_auc: float | None) -> Severity:
    """How strongly an eval set is "too clean", judged on style alone (topic never decides: an eval set
    about other intents than train or real is not cleaner for it).

    high: a classifier on style features tells eval from real (style AUC >= EVAL_REAL_STYLE_AUC_HIGH)
    and eval's style statistics are at most CLOSER_TO_TRAIN x as far from train as from real (which
    are at least MIN_EVAL_REAL_DISTANCE apart); medium: style AUC >= AUC_MEDIUM and eval is closer to
    train than to real in style. Without an AUC (too few rows), the distances alone can give medium."""
    closer = d_eval_real >= MIN_EVAL_REAL_DISTANCE and d_eval_train <= CLOSER_TO_TRAIN * d_eval_real
    if eval_real_style_auc is None:
        return Severity.MEDIUM if closer else Severity.INFO
    if eval_real_style_auc >= EVAL_REAL_STYLE_AUC_HIGH and closer:
        return Severity.HIGH
    if eval_real_style_auc >= AUC_MEDIUM and d_eval_train < d_eval_real:
        return Severity.MEDIUM
    return Severity.INFO


def _eval_too_clean(ctx: AuditContext) -> list[Finding]:
    """Compare eval with train and with real by style: style-statistic distances and a style-only
    eval-vs-real classifier decide (`judge_eval_cleanliness`); the AUCs on words + style are reported
    for reference only, since they also see topic."""
    assert ctx.eval is not None and ctx.real is not None
    train, ev, real, seed = ctx.train, ctx.eval, ctx.real, ctx.config.seed
    if min(len(train), len(ev), len(real)) == 0:
        return []
    s_train, s_eval, s_real = split_style(ctx, "train"), split_style(ctx, "eval"), split_style(ctx, "real")
    stats = {"train": style_stats(s_train), "eval": style_stats(s_eval), "real": style_stats(s_real)}
    d_eval_train = style_distance(stats["eval"], stats["train"])
    d_eval_real = style_distance(stats["eval"], stats["real"])
    train_eval = separability(train.texts, s_train, ev.texts, s_eval, seed, ratio=1)
    eval_real = separability(ev.texts, s_eval, real.texts, s_real, seed, ratio=TRAIN_PER_REAL)
    severity = judge_eval_cleanliness(d_eval_train, d_eval_real, eval_real.style_auc if eval_real else None)
    parts = [f"style distance eval-train {d_eval_train:.2f} vs eval-real {d_eval_real:.2f}"]
    if eval_real is not None:
        parts.append(f"eval-vs-real AUC on style features {eval_real.style_auc:.2f} ± {eval_real.style_auc_std:.2f}")
    if train_eval is not None:
        parts.append(f"train-vs-eval AUC on style features {train_eval.style_auc:.2f}")
    topical = [f"{name} {sep.auc:.2f}" for name, sep in (("train-vs-eval", train_eval), ("eval-vs-real", eval_real))
               if sep is not None]
    if topical:
        parts.append("with words, which also see topic (not used): " + ", ".join(topical))
    lead = {Severity.HIGH: "the eval set is as clean as train and unlike real traffic; its score will overstate "
                           "real accuracy",
            Severity.MEDIUM: "the eval set is written more like train than like real traffic",
            Severity.INFO: "the eval set is not notably cleaner than real traffic"}[severity]
    return [Finding(
        check="eval_too_clean", severity=severity, split="eval", message=f"{lead} ({'; '.join(parts)})",
        evidence={
            "stats": stats, "stat_names": list(_STATS),
            "style_distance": {"eval_train": round(d_eval_train, 4), "eval_real": round(d_eval_real, 4)},
            "eval_real_style_auc": round(eval_real.style_auc, 4) if eval_real else None,
            "train_eval_style_auc": round(train_eval.style_auc, 4) if train_eval else None,
            "decided_on": ["style_distance", "eval_real_style_auc"] if eval_real else ["style_distance"],
            "train_vs_eval": train_eval.as_dict() if train_eval else None,
            "eval_vs_real": eval_real.as_dict() if eval_real else None,
            "thresholds": {"eval_real_style_auc_high": EVAL_REAL_STYLE_AUC_HIGH,
                           "eval_real_style_auc_medium": AUC_MEDIUM,
                           "closer_to_train": CLOSER_TO_TRAIN, "min_eval_real_distance": MIN_EVAL_REAL_DISTANCE},
        },
    )]


class SeparabilityScores(Record):
    """A cross-validated classifier's ROC AUC at telling two sets of rows apart."""

    auc: float
    auc_std: float
    style_auc: float
    style_auc_std: float
    n_a: int
    n_b: int
    folds: int
    repeats: int


class VocabularyOverlap(Record):
    token_share_seen: float
    distinct_share_seen: float
    unseen_examples: list[str]


class LeastCovered(Record):
    real_id: str
    real_text: str
    train_id: str
    train_text: str
    similarity: float


class RealGapEvidence(Evidence):
    stats: dict[str, dict[str, float]]
    stat_names: list[str]
    separability: SeparabilityScores | None
    auc_thresholds: dict[str, float]
    vocabulary: VocabularyOverlap
    least_covered: list[LeastCovered]
    reference_rows: int
    mean_nearest_similarity: float


class EvalCleanEvidence(Evidence):
    """Decided on style only: the style-statistic distances and the style-only eval-vs-real AUC
    (`decided_on`); the word-and-style AUCs are reported, not used (they also see topic)."""

    stats: dict[str, dict[str, float]]
    stat_names: list[str]
    style_distance: dict[str, float]
    eval_real_style_auc: float | None
    train_eval_style_auc: float | None
    decided_on: list[str]
    train_vs_eval: SeparabilityScores | None
    eval_vs_real: SeparabilityScores | None
    thresholds: dict[str, float]


class RealGap(Check):
    """Side-by-side style statistics of train and the real batch, the train-vs-real AUC, and the
    real rows least covered by the training set."""

    name = "real_gap"
    description = "Synthetic vs real: style side by side, vocabulary overlap, a synthetic-vs-real classifier"
    needs = ("real",)
    recommendation = ("Make the training rows look like real messages (length, casing, typos, tone): put real "
                      "examples in the generation prompt or mix real rows into the training set.")
    Evidence = RealGapEvidence

    def run(self, ctx: AuditContext) -> list[Finding]:
        return _real_gap(ctx)

    def subject(self, f: Finding) -> str | None:
        return "train vs real"


class EvalTooClean(Check):
    """Compare eval with train and with real by style: style-statistic distances and a style-only
    eval-vs-real classifier decide (`judge_eval_cleanliness`); the AUCs on words + style are reported
    for reference only, since they also see topic."""

    name = "eval_too_clean"
    description = "The eval set is written like train and unlike the real batch"
    needs = ("eval", "real")
    recommendation = ("Build the eval set from real messages (or add real-style rows to it); a clean eval set "
                      "overstates how well the model will do on real traffic.")
    Evidence = EvalCleanEvidence

    def run(self, ctx: AuditContext) -> list[Finding]:
        return _eval_too_clean(ctx)

    def subject(self, f: Finding) -> str | None:
        return "eval vs train and real"
