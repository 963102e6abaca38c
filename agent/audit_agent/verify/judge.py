"""Deterministic verification of judge verdicts. A claim becomes a fact only when signals that owe
nothing to the model back the very thing it claims; a claim that fails stays a claim (reported as
unverified, never as a fact).

- The quote must be a real span of the row: found verbatim or after normalising case, whitespace and
  typographic quotes (never a fuzzy partial match), at least `MIN_QUOTE_CHARS` characters, of at
  least `MIN_QUOTE_WORDS` words of which `MIN_QUOTE_CONTENT_WORDS` carry meaning (not stop words), so
  "the", "my order" or "once this has been" prove nothing.
- `contradicted` needs backing OF THE PROPOSED LABEL (`backing_signals`): the out-of-fold classifier
  prefers it to the given label and gives it at least `P_BEST_FLOOR`, or ranks it among its top
  `TOP_RANKS` labels above a uniform share of its K labels (`TOP_PRIOR_MULTIPLE` / K); or most of the row's nearest
  neighbours outside its near-duplicate group carry it; or it is the other label of the row's
  near-duplicate conflict group. A conflict group is symmetric (each side "backs" the other's label,
  and the classifier trained on the twin echoes it), so for a conflict-group row the group and the
  classifier count as one signal and the neighbours outside the group must agree as well.
- `ambiguous` needs its own backing (`doubt_signals`): a low classifier margin between the top two
  labels, neighbours split between labels, or a near-duplicate conflict group.
- A judge whose calibration canaries say it is not informative verifies nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from audit_agent.tasks.judge import JudgeVerdict, Verdict
from audit_agent.verify.judge_signals import NEIGHBOURS_K, RowSignals, SignalSource

__all__ = ["NEIGHBOURS_K", "RowSignals", "SignalSource", "Verification", "backing_signals", "canonical_label",
           "canonical_verdict", "check_quote", "classifier_backs", "doubt_signals", "match_quote", "self_contradictory",
           "verify_verdict"]

MIN_QUOTE_CHARS = 8
"""A quote shorter than this (after trimming quote marks and punctuation at its edges) proves nothing."""
MIN_QUOTE_WORDS = 2
"""Words a quote must hold."""
MIN_QUOTE_CONTENT_WORDS = 1
"""Words of 2+ letters or digits outside scikit-learn's English stop-word list a quote must hold."""
P_BEST_FLOOR = 0.25
"""The classifier backs a proposed label it prefers to the given one when it gives it at least this
probability, whatever its rank (or, below it, under `TOP_RANKS`/`TOP_PRIOR_MULTIPLE`)."""
TOP_RANKS = 2
"""Below `P_BEST_FLOOR`, the classifier still backs a proposed label it prefers to the given one when
the label is among its top this many labels for the row ..."""
TOP_PRIOR_MULTIPLE = 1.0
"""... and gets at least this multiple of a uniform share (1/K for K labels). With many labels a
classifier trained on a few dozen rows per label spreads its probability: on a 20-label Banking77
sample its second choice for a mislabelled row got 0.07-0.18 (8-36 times the given label's), which
the floor alone refused. The top-two bound keeps a claim naming a random label from being backed
unless it names one of the two labels the classifier ranks highest. Chosen on the bundled example
only (8 labels; simulated judge, accuracy 0.6-1.0, seeds 0-2): 0.5-2.0 admit no claim the floor alone
refused, 0.25 admits claims naming a wrong label (docs/judge.md)."""
AMBIGUOUS_MAX_MARGIN = 0.2
"""An ambiguous claim is backed when the classifier's top two labels are closer than this."""
SPLIT_MIN_NEIGHBOURS = 2
"""Neighbours are split when the second most common label among them holds at least this many."""
MAX_NEIGHBOURS = 20
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[0-9a-z]+")
_QUOTE_EDGES = " \t\n\"'`“”‘’«».,;:!?…()[]"
_TYPOGRAPHIC = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "«": '"', "»": '"', "–": "-", "—": "-",
                              "…": "..."})


def normalize_quote(text: str) -> str:
    """Case-, whitespace- and typographic-quote-insensitive form used to look a quote up."""
    return _SPACE.sub(" ", text.translate(_TYPOGRAPHIC).casefold()).strip()


def content_words(text: str) -> list[str]:
    """The words of `text` that carry meaning: 2+ letters or digits, not an English stop word."""
    return [w for w in _WORD.findall(normalize_quote(text)) if len(w) >= 2 and w not in ENGLISH_STOP_WORDS]


@dataclass(frozen=True)
class QuoteCheck:
    """How a quote occurs in the row: `match` is exact / normalised / none; `problem` says why it
    does not count (None when it does)."""

    match: str
    chars: int
    content_words: int
    problem: str | None

    @property
    def found(self) -> bool:
        return self.problem is None


def check_quote(quote: str, text: str) -> QuoteCheck:
    """Is `quote` a real span of `text`, long enough to mean something?"""
    needle = normalize_quote(quote).strip(_QUOTE_EDGES)
    words = len(content_words(needle))
    if not needle:
        return QuoteCheck("none", 0, 0, "no quote")
    if quote.strip() in text:
        how = "exact"
    elif needle in normalize_quote(text):
        how = "normalised"
    else:
        return QuoteCheck("none", len(needle), words, "quote not found in the text")
    if len(needle) < MIN_QUOTE_CHARS:
        return QuoteCheck(how, len(needle), words, f"quote shorter than {MIN_QUOTE_CHARS} characters")
    if len(_WORD.findall(needle)) < MIN_QUOTE_WORDS:
        return QuoteCheck(how, len(needle), words, f"quote has fewer than {MIN_QUOTE_WORDS} words")
    if words < MIN_QUOTE_CONTENT_WORDS:
        return QuoteCheck(how, len(needle), words, "quote has no content word (only stop words)")
    return QuoteCheck(how, len(needle), words, None)


MIN_FOUND_CHARS = 3
"""Below this a "quote" is not looked up at all (a letter occurs in almost any text)."""


def match_quote(quote: str, text: str) -> tuple[str, float]:
    """How `quote` occurs in `text`: ("exact" | "normalised" | "none", score 100 or 0). Only whether it
    occurs; `check_quote` also asks whether it is long enough to count as evidence."""
    result = check_quote(quote, text)
    if result.match == "none" or result.chars < MIN_FOUND_CHARS:
        return "none", 0.0
    return result.match, 100.0


@dataclass
class Verification:
    verified: bool
    evidence: dict[str, Any]


def _label_key(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def canonical_label(name: str, label_set: Collection[str]) -> str | None:
    """`name` if it is a label; else the one label it spells differently only in case or punctuation
    ('calendar-update' -> 'calendar_update'), which free-text label fields of big label sets produce;
    else None."""
    if name in label_set:
        return name
    matches = [lab for lab in label_set if _label_key(lab) == _label_key(name)]
    return matches[0] if len(matches) == 1 else None


def canonical_verdict(verdict: JudgeVerdict, label_set: Collection[str]) -> tuple[JudgeVerdict, str | None]:
    """The verdict with `best_label` spelled as in the label set, and the model's own spelling when it
    was changed (kept as evidence)."""
    label = canonical_label(verdict.best_label, label_set)
    if label is None or label == verdict.best_label:
        return verdict, None
    return verdict.model_copy(update={"best_label": label}), verdict.best_label


def self_contradictory(verdict: JudgeVerdict, given_label: str) -> bool:
    """A "contradicted" verdict whose best label is the given label contradicts itself: it is no claim
    about the row (small models do this often) and is counted, not reported as a finding."""
    return verdict.verdict is Verdict.CONTRADICTED and verdict.best_label == given_label


def _majority(labels: list[str]) -> str | None:
    """The label more than half of `labels` carry, else None."""
    if not labels:
        return None
    label, count = Counter(labels).most_common(1)[0]
    return label if 2 * count > len(labels) else None


def classifier_backs(s: RowSignals) -> bool:
    """The out-of-fold classifier prefers the proposed label to the given one and gives it at least
    `P_BEST_FLOOR`, or ranks it among its top `TOP_RANKS` labels with at least `TOP_PRIOR_MULTIPLE` / K."""
    if s.p_best is None or s.p_given is None or s.p_best <= s.p_given:
        return False
    if s.p_best >= P_BEST_FLOOR:
        return True
    return (s.rank_best is not None and s.rank_best <= TOP_RANKS and s.classes is not None and s.classes > 0
            and s.p_best >= TOP_PRIOR_MULTIPLE / s.classes)


def backing_signals(best: str, given: str, s: RowSignals) -> list[str]:
    """Which model-free signals back `best` as the row's label: "classifier", "neighbours" (majority of
    the nearest neighbours outside the near-duplicate group), "conflict_group" (a near duplicate
    carries it; the classifier's agreement then counts as the same signal: it learned the twin)."""
    if best == given:
        return []
    out = []
    classifier = classifier_backs(s)
    conflict = best in {lab for lab in s.neighbour_labels if lab != given}
    if classifier and not conflict:
        out.append("classifier")
    if _majority(s.knn_labels) == best:
        out.append("neighbours")
    if conflict:
        out.append("conflict_group")
    return out


def backing_short(backed: list[str], min_backing: int) -> str | None:
    """Why `backed` is not enough (None when it is): fewer than `min_backing` signals, or a conflict
    group that the neighbours outside it do not confirm."""
    if not backed:
        return "no model-free signal backs best_label"
    if len(backed) < min_backing:
        return f"only {len(backed)} model-free signal backs best_label ({min_backing} needed)"
    if "conflict_group" in backed and "neighbours" not in backed:
        return ("best_label is the other label of a near-duplicate conflict group (symmetric: it backs "
                "either side) and the neighbours outside the group do not confirm it")
    return None


def neighbours_split(labels: list[str]) -> bool:
    """The second most common label among the neighbours holds at least SPLIT_MIN_NEIGHBOURS of them."""
    common = Counter(labels).most_common(2)
    return len(common) == 2 and common[1][1] >= SPLIT_MIN_NEIGHBOURS


def doubt_signals(s: RowSignals) -> list[str]:
    """Which model-free signals say the row's label is hard to read: "low_margin", "neighbours_split",
    "conflict_group"."""
    out = []
    if s.margin is not None and s.margin < AMBIGUOUS_MAX_MARGIN:
        out.append("low_margin")
    if neighbours_split(s.knn_labels):
        out.append("neighbours_split")
    if s.conflict_group:
        out.append("conflict_group")
    return out


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def verify_verdict(verdict: JudgeVerdict, *, text: str, given_label: str, label_set: Collection[str],
                   signals: RowSignals, min_backing: int = 1, judge_informative: bool | None = None) -> Verification:
    """Check every claim of one verdict against the row and the model-free signals.

    contradicted: verified iff the quote counts, best_label is a real label other than the given one,
    and at least `min_backing` signals back best_label (`backing_signals`).
    ambiguous: verified iff the quote counts and a doubt signal backs it (`doubt_signals`).
    supported: verified iff the quote counts and best_label is valid.
    Nothing is verified when `judge_informative` is False (the canaries say the judge is no better
    than a constant answer)."""
    quote = check_quote(verdict.evidence, text)
    label_valid = verdict.best_label in label_set
    differs = verdict.best_label != given_label
    backed = backing_signals(verdict.best_label, given_label, signals) if label_valid else []
    doubts = doubt_signals(signals)
    reasons = [] if quote.found else [str(quote.problem)]
    if verdict.verdict is Verdict.CONTRADICTED:
        if not label_valid:
            reasons.append("best_label is not in the label set")
        elif not differs:
            reasons.append("best_label equals the given label")
        elif (short := backing_short(backed, min_backing)) is not None:
            reasons.append(short)
    elif verdict.verdict is Verdict.AMBIGUOUS:
        if not doubts:
            reasons.append("classifier is confident (clear margin), neighbours agree, no conflicting duplicates")
    elif not label_valid:
        reasons.append("best_label is not in the label set")
    if judge_informative is False:
        reasons.append("the judge is not informative on the calibration canaries")
    neighbour_majority = _majority(signals.knn_labels)
    evidence: dict[str, Any] = {
        "quote_found": quote.found,
        "quote_match": quote.match,
        "quote_score": 100.0 if quote.found else 0.0,
        "quote_chars": quote.chars,
        "quote_content_words": quote.content_words,
        "label_valid": label_valid,
        "oof_agrees": None if signals.p_best is None or signals.p_given is None else "classifier" in backed,
        "p_best": _round(signals.p_best),
        "p_given": _round(signals.p_given),
        "oof_rank_best": signals.rank_best,
        "oof_top": signals.oof_top,
        "oof_margin": _round(signals.margin),
        "neighbour_labels_agree": "conflict_group" in backed,
        "neighbour_labels": sorted(set(signals.neighbour_labels))[:MAX_NEIGHBOURS],
        "conflict_group": signals.conflict_group,
        "knn_labels": signals.knn_labels[:MAX_NEIGHBOURS],
        "knn_majority": neighbour_majority,
        "backed_by": backed if verdict.verdict is Verdict.CONTRADICTED else
        doubts if verdict.verdict is Verdict.AMBIGUOUS else [],
        "min_backing": min_backing,
        "judge_informative": judge_informative,
        "failed_because": reasons,
    }
    return Verification(not reasons, evidence)
