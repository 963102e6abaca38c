"""The synthetic-vs-real gap: does the training set (and the eval set) look like the real traffic?

- `real_gap`: side-by-side style statistics, vocabulary overlap, a cross-validated classifier that
  tells training rows from real rows (AUC near 0.5 = indistinguishable, near 1.0 = the training set
  does not look like real traffic), and the real rows least like any training row.
- `eval_too_clean`: the eval set is written like the training set and unlike the real batch, so its
  score says little about real traffic. Judged on style only (style-statistic distances and a
  style-feature eval-vs-real classifier): a difference in topic does not make an eval set clean or messy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit_agent.checks.base import Check
from audit_agent.context import AuditContext
from audit_agent.features.split_compare import (
    _STATS,
    LEAST_COVERED,
    MIN_ROWS_FOR_AUC,
    TRAIN_PER_REAL,
    Separability,
    nearest_train,
    separability,
    style_distance,
    style_stats,
)
from audit_agent.features.style import tokens_by_row
from audit_agent.findings import Evidence, Finding, Record, Severity

AUC_HIGH = 0.9
AUC_MEDIUM = 0.75
EVAL_REAL_STYLE_AUC_HIGH = 0.85
CLOSER_TO_TRAIN = 0.5
MIN_EVAL_REAL_DISTANCE = 0.15
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
    train_style, real_style = ctx.features.style("train"), ctx.features.style("real")
    table = {"train": style_stats(train_style), "real": style_stats(real_style)}
    if ctx.eval is not None and len(ctx.eval):
        table["eval"] = style_stats(ctx.features.style("eval"))
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
            "separability": sep.rounded() if sep else None,
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
    s_train, s_eval, s_real = ctx.features.style("train"), ctx.features.style("eval"), ctx.features.style("real")
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
            "train_vs_eval": train_eval.rounded() if train_eval else None,
            "eval_vs_real": eval_real.rounded() if eval_real else None,
            "thresholds": {"eval_real_style_auc_high": EVAL_REAL_STYLE_AUC_HIGH,
                           "eval_real_style_auc_medium": AUC_MEDIUM,
                           "closer_to_train": CLOSER_TO_TRAIN, "min_eval_real_distance": MIN_EVAL_REAL_DISTANCE},
        },
    )]


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
    separability: Separability | None
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
    train_vs_eval: Separability | None
    eval_vs_real: Separability | None
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
