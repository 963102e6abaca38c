"""Deterministic verification of judge verdicts: is the quote really in the text, is the label real,
and does a signal that owes nothing to the model (out-of-fold classifier, near-duplicate neighbours)
agree? A claim that fails stays a claim: it is reported as unverified, never as a fact."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from rapidfuzz import fuzz

from audit_agent.dataset import AuditContext
from audit_agent.tasks.judge import JudgeVerdict, Verdict

FUZZY_MIN = 90.0
"""rapidfuzz partial_ratio (0-100) at which a quote that is not found verbatim still counts."""
MIN_QUOTE_CHARS = 3
AMBIGUOUS_MAX_P_GIVEN = 0.5
"""An ambiguous verdict is backed when the classifier gives the given label less than this."""
MAX_NEIGHBOURS = 20
_SPACE = re.compile(r"\s+")
_QUOTE_EDGES = " \t\n\"'`“”‘’«».,;:!?…"


def normalize_quote(text: str) -> str:
    """Case- and whitespace-insensitive form used to look a quote up."""
    return _SPACE.sub(" ", text.casefold()).strip()


def match_quote(quote: str, text: str, *, fuzzy_min: float = FUZZY_MIN) -> tuple[str, float]:
    """How `quote` occurs in `text`: ("exact" | "normalised" | "fuzzy" | "none", score 0-100)."""
    quote = quote.strip()
    needle = normalize_quote(quote).strip(_QUOTE_EDGES)
    if len(needle) < MIN_QUOTE_CHARS:
        return "none", 0.0
    if quote in text:
        return "exact", 100.0
    haystack = normalize_quote(text)
    if needle in haystack:
        return "normalised", 100.0
    if len(needle) > len(haystack):  # a "quote" longer than the text carries invented words
        return "none", 0.0
    score = float(fuzz.partial_ratio(needle, haystack))
    return ("fuzzy" if score >= fuzzy_min else "none"), round(score, 1)


@dataclass
class RowSignals:
    """What the deterministic features say about one row: OOF probabilities of the judge's best
    label and the given label (None without a classifier), near-duplicate neighbours' labels,
    and whether the row sits in a near-duplicate group with conflicting labels."""

    p_best: float | None = None
    p_given: float | None = None
    oof_top: str | None = None
    neighbour_labels: list[str] = field(default_factory=list)
    conflict_group: bool = False


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


def verify_verdict(verdict: JudgeVerdict, *, text: str, given_label: str, label_set: Collection[str],
                   signals: RowSignals, fuzzy_min: float = FUZZY_MIN,
                   ambiguous_max_p_given: float = AMBIGUOUS_MAX_P_GIVEN) -> Verification:
    """Check every claim of one verdict against the row and the deterministic signals.

    contradicted: verified iff the quote is found, best_label is a real label other than the given
    one, and the OOF classifier prefers best_label over the given label or a near-duplicate
    neighbour carries best_label.
    ambiguous: verified iff the quote is found and the classifier gives the given label less than
    `ambiguous_max_p_given` or the row is in a near-duplicate group with conflicting labels.
    supported: verified iff the quote is found and best_label is valid.
    """
    how, score = match_quote(verdict.evidence, text, fuzzy_min=fuzzy_min)
    quote_found = how != "none"
    label_valid = verdict.best_label in label_set
    differs = verdict.best_label != given_label
    oof_agrees: bool | None = None
    if signals.p_best is not None and signals.p_given is not None:
        oof_agrees = differs and signals.p_best > signals.p_given
    neighbour_agrees = differs and verdict.best_label in signals.neighbour_labels
    oof_doubts_given = signals.p_given is not None and signals.p_given < ambiguous_max_p_given

    if verdict.verdict is Verdict.CONTRADICTED:
        support = bool(oof_agrees) or neighbour_agrees
        verified = quote_found and label_valid and differs and support
    elif verdict.verdict is Verdict.AMBIGUOUS:
        verified = quote_found and (oof_doubts_given or signals.conflict_group)
    else:
        verified = quote_found and label_valid

    reasons = []
    if not quote_found:
        reasons.append("quote not found in the text")
    if not label_valid:
        reasons.append("best_label is not in the label set")
    if verdict.verdict is Verdict.CONTRADICTED and not differs:
        reasons.append("best_label equals the given label")
    if verdict.verdict is Verdict.CONTRADICTED and label_valid and differs and not (oof_agrees or neighbour_agrees):
        reasons.append("no deterministic signal prefers best_label")
    if verdict.verdict is Verdict.AMBIGUOUS and not (oof_doubts_given or signals.conflict_group):
        reasons.append("classifier is confident in the given label and no conflicting duplicates")
    evidence: dict[str, Any] = {
        "quote_found": quote_found,
        "quote_match": how,
        "quote_score": score,
        "label_valid": label_valid,
        "oof_agrees": oof_agrees,
        "p_best": None if signals.p_best is None else round(signals.p_best, 4),
        "p_given": None if signals.p_given is None else round(signals.p_given, 4),
        "oof_top": signals.oof_top,
        "neighbour_labels_agree": neighbour_agrees,
        "neighbour_labels": sorted(set(signals.neighbour_labels))[:MAX_NEIGHBOURS],
        "conflict_group": signals.conflict_group,
        "failed_because": reasons,
    }
    return Verification(verified, evidence)


class SignalSource:
    """Deterministic per-row signals from `ctx.features`, each optional: a missing classifier
    (generation data, feature not built yet) or neighbour index just leaves its signal empty."""

    def __init__(self, ctx: AuditContext) -> None:
        self.ctx = ctx
        frame = ctx.train.frame
        self.ids: list[str] = [str(i) for i in frame["id"].tolist()]
        self.position: dict[str, int] = {rid: pos for pos, rid in enumerate(self.ids)}
        self.labels: list[str] = [str(v) for v in frame["label"].tolist()] if "label" in frame else []
        self.notes: list[str] = []

    @cached_property
    def oof(self) -> Any | None:
        if self.ctx.train.kind != "classification" or not self.ctx.train.has_labels:
            self.notes.append("no out-of-fold classifier: data has no class labels")
            return None
        try:
            oof = self.ctx.features.oof
            classes = [str(c) for c in oof.classes]
            if len(oof.probs) != len(self.ids):
                raise ValueError("OOF probabilities are not aligned with the training rows")
        except (ImportError, AttributeError, NotImplementedError, ValueError) as exc:
            self.notes.append(f"no out-of-fold classifier: {type(exc).__name__}: {str(exc)[:120]}")
            return None
        self._class_index = {c: i for i, c in enumerate(classes)}
        self._classes = classes
        return oof

    @cached_property
    def groups(self) -> dict[int, list[int]]:
        """Row position -> positions of its near-duplicate group (the row itself included)."""
        try:
            index = self.ctx.features.neighbors
            raw = list(index.groups())
        except (ImportError, AttributeError, NotImplementedError, ValueError, TypeError) as exc:
            self.notes.append(f"no near-duplicate groups: {type(exc).__name__}: {str(exc)[:120]}")
            return {}
        out: dict[int, list[int]] = {}
        for group in raw:
            members = [self._pos(m) for m in group]
            positions = [p for p in members if p is not None]
            for p in positions:
                out[p] = positions
        return out

    def _pos(self, member: Any) -> int | None:
        """Group members may be row positions (ints) or row ids (str)."""
        if isinstance(member, str):
            return self.position.get(member)
        try:
            pos = int(member)
        except (TypeError, ValueError):
            return None
        return pos if 0 <= pos < len(self.ids) else None

    def prob(self, pos: int, label: str) -> float | None:
        oof = self.oof
        if oof is None or label not in self._class_index:
            return None
        return float(oof.probs[pos][self._class_index[label]])

    def oof_top(self, pos: int) -> str | None:
        """The classifier's most likely label for the row."""
        oof = self.oof
        if oof is None:
            return None
        return self._classes[int(np.argmax(np.asarray(oof.probs[pos])))]

    def for_row(self, row_id: str, best_label: str, given_label: str) -> RowSignals:
        pos = self.position.get(str(row_id))
        if pos is None:
            return RowSignals()
        group = [p for p in self.groups.get(pos, []) if p != pos][:1000]
        neighbour_labels = [self.labels[p] for p in group] if self.labels else []
        conflict = bool(neighbour_labels) and any(lab != given_label for lab in neighbour_labels)
        return RowSignals(p_best=self.prob(pos, best_label), p_given=self.prob(pos, given_label),
                          oof_top=self.oof_top(pos), neighbour_labels=neighbour_labels,
                          conflict_group=conflict)

    def rank_rows_by_label(self, positions: Sequence[int], label: str) -> list[int]:
        """`positions` sorted by OOF probability of `label`, highest first (unchanged without OOF)."""
        if self.oof is None or label not in self._class_index:
            return list(positions)
        col = np.asarray(self.oof.probs)[np.asarray(positions, dtype=int), self._class_index[label]]
        return [positions[i] for i in np.argsort(-col, kind="stable")]
