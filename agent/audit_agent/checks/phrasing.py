"""Repeated openings and endings: the same first words or the same closing sentence across many rows
(an LLM's house style that a small model copies), overall and within each label."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from audit_agent.checks.base import Check
from audit_agent.config import CheckConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.features.slots import SlotView, normalize_many, slot_view
from audit_agent.findings import Evidence, Finding, Record, RowId, Severity

MAX_FINDINGS_PER_FIELD = 25
MIN_LABEL_ROWS = 5
MIN_COUNT = 3
EXTEND_KEEP = 0.8  # a longer opening replaces a shorter one while it keeps this share of its rows
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\x1f+")


@dataclass
class TextField:
    """One analysed text column: `text` (inputs) or `target` (generation targets)."""

    name: str
    ids: list[str]
    raw: list[str]
    view: SlotView
    labels: np.ndarray | None  # class label per row (classification only)


def text_fields(ds: Dataset) -> list[TextField]:
    """The input texts, plus the target texts of generation data."""
    labels = None
    if ds.kind == "classification" and ds.has_labels:
        labels = ds.frame["label"].astype(object).where(ds.frame["label"].notna(), None).to_numpy()
    texts = [str(t) for t in ds.texts]
    fields = [TextField("text", [str(i) for i in ds.ids], texts, slot_view(texts, key="text"), labels)]
    if ds.kind == "generation" and ds.has_labels:
        keep = ds.frame["label"].notna().to_numpy()
        targets = [str(t) for t in ds.frame["label"][keep]]
        ids = [str(i) for i in ds.frame["id"][keep]]
        fields.append(TextField("target", ids, targets, slot_view(targets, key="target"), None))
    return fields


def opening_keys(tokens: list[list[str]], n_words: int) -> list[str | None]:
    """The first `n_words` tokens of each row (None when the row is not longer than that)."""
    return [" ".join(t[:n_words]) if len(t) > n_words else None for t in tokens]


def ending_keys(masked: list[str]) -> list[str | None]:
    """The normalised last sentence of each row with 2+ sentences, grown backwards to 2+ words
    (so "Thanks,\\n{NAME}" stays one sign-off); None for single-sentence rows."""
    last: list[str | None] = []
    for text in masked:
        parts = [p for p in _SENTENCE_BREAK.split(text.strip()) if p.strip()]
        if len(parts) < 2:
            last.append(None)
            continue
        take = 1
        while take < len(parts) - 1 and len(" ".join(parts[-take:]).split()) < 2:
            take += 1
        last.append(" ".join(parts[-take:]))
    present = [i for i, t in enumerate(last) if t is not None]
    normed = normalize_many([last[i] for i in present])  # type: ignore[misc]
    out: list[str | None] = [None] * len(masked)
    for i, key in zip(present, normed, strict=True):
        out[i] = key or None
    return out


@dataclass
class Repeat:
    """A key (opening or ending) repeated across rows, with its overall and per-label counts."""

    key: str
    rows: np.ndarray
    share: float
    label_counts: dict[str, int]
    label_sizes: dict[str, int]

    def label_share(self, label: str) -> float:
        return self.label_counts.get(label, 0) / max(self.label_sizes.get(label, 1), 1)

    @property
    def max_label(self) -> tuple[str | None, float]:
        best = [(self.label_share(lab), lab) for lab in self.label_counts
                if self.label_sizes.get(lab, 0) >= MIN_LABEL_ROWS]
        if not best:
            return None, 0.0
        share, label = max(best)
        return label, share


def _min_count(threshold: float, size: int) -> int:
    return max(MIN_COUNT, math.ceil(threshold * size))


def find_repeats(keys: list[str | None], labels: np.ndarray | None, threshold: float) -> list[Repeat]:
    """Keys used by >= `threshold` of all rows, or of one label's rows (label with 5+ rows)."""
    frame = pd.DataFrame({"key": keys, "label": labels if labels is not None else None})
    frame = frame[frame["key"].notna()]
    n_rows = len(keys)
    if frame.empty:
        return []
    overall = frame["key"].value_counts()
    selected = set(overall.index[overall >= _min_count(threshold, n_rows)])
    label_sizes: dict[str, int] = {}
    if labels is not None:
        label_sizes = {str(k): int(v) for k, v in pd.Series(labels).dropna().value_counts().items()}
        per_label = frame.dropna(subset=["label"]).groupby(["label", "key"]).size()
        per_label = per_label[per_label >= MIN_COUNT]
        sizes = per_label.index.get_level_values("label").map(label_sizes).to_numpy()
        need = np.maximum(MIN_COUNT, np.ceil(threshold * sizes))
        hits = per_label[(per_label.to_numpy() >= need) & (sizes >= MIN_LABEL_ROWS)]
        selected |= set(hits.index.get_level_values("key"))
    if not selected:
        return []
    codes, uniques = pd.factorize(pd.Series(keys, dtype=object))
    code_of = {k: i for i, k in enumerate(uniques)}
    key_labels = labels
    repeats = []
    for key in selected:
        rows = np.flatnonzero(codes == code_of[key])
        found = Counter(key_labels[rows]).most_common() if key_labels is not None else []
        counts = {str(k): int(v) for k, v in found if k is not None}
        repeats.append(Repeat(str(key), rows, len(rows) / n_rows, counts, label_sizes))
    return repeats


def _extend_opening(rep: Repeat, tokens: list[list[str]], n_words: int, labels: np.ndarray | None) -> Repeat:
    """Grow an opening by up to 2 words while the longer opening keeps most of its rows."""
    for extra in (2, 1):
        longer = [" ".join(tokens[i][: n_words + extra]) for i in rep.rows if len(tokens[i]) > n_words + extra]
        if not longer:
            continue
        key, count = Counter(longer).most_common(1)[0]
        if count >= EXTEND_KEEP * len(rep.rows):
            rows = np.array([i for i in rep.rows if " ".join(tokens[i][: n_words + extra]) == key
                             and len(tokens[i]) > n_words + extra])
            counts = Counter(labels[rows]) if labels is not None else Counter()
            label_counts = {str(k): int(v) for k, v in counts.most_common() if k is not None}
            return Repeat(key, rows, rep.share * len(rows) / len(rep.rows), label_counts, rep.label_sizes)
    return rep


_LABEL_SPLIT = re.compile(r"[^a-z0-9]+")
_STOP = frozenset(["a", "an", "the", "my", "your", "our", "of", "to", "in", "on", "for", "and", "or", "is",
                   "are", "was", "i", "me", "it", "its", "with", "at", "by"])


def _wordlist(text: str) -> list[str]:
    return text.split()


FORMULA_WORDS = frozenset(_wordlist(
    "please pls thanks thank thx hi hello hey dear greetings regards kindly appreciate appreciated grateful "
    "hope hoping wondering assistance request requesting advance reaching sincerely cheers apologies apologize "
    "sorry inquire inquiring enquire concerning regarding"))
FORMULA_BIGRAMS = ("would like", "i'd like", "good day", "good morning", "good afternoon", "good evening",
                   "let us know", "let me know", "my name is", "reach out")


def is_formulaic(phrase: str) -> bool:
    """Whether a normalised phrase holds a politeness/letter formula word ("please", "hope", "would like")."""
    return any(w in FORMULA_WORDS for w in phrase.split()) or any(_contains_words(phrase, b) for b in FORMULA_BIGRAMS)


def _contains_words(longer: str, shorter: str) -> bool:
    return f" {shorter} " in f" {longer} "


def label_words(label: str) -> set[str]:
    """Content words of a label name (`card_arrival` -> {card, arrival})."""
    return {w for w in _LABEL_SPLIT.split(str(label).lower()) if len(w) >= 3 and w not in _STOP}


def is_topical(phrase: str, label: str | None) -> bool:
    """Whether a phrase uses a content word of the label's name (a topic word, not a style formula):
    same word, or one a prefix of the other on 5 letters ("limit"/"limits", "min"/"minimum")."""
    if label is None:
        return False
    names = label_words(label)
    for word in phrase.split():
        if word in _STOP or len(word) < 3:
            continue
        for name in names:
            if word.startswith(name[:5]) or name.startswith(word[:5]):
                return True
    return False


def severity_for(share: float, threshold: float) -> Severity:
    """High when one phrase covers >= 30% of the data or of a label, medium >= 10% (or threshold)."""
    if share >= 0.3:
        return Severity.HIGH
    if share >= min(0.1, max(threshold, 0.1)):
        return Severity.MEDIUM
    return Severity.LOW


def repeat_finding(rep: Repeat, check_name: str, what: str, field: TextField, cfg: CheckConfig,
                   split: str = "train") -> Finding:
    """One finding for a repeated opening/ending, with overall and per-label numbers and examples."""
    label, label_share = rep.max_label
    top_share = max(rep.share, label_share)
    per_label = {lab: {"count": c, "share": round(rep.label_share(lab), 4), "label_rows": rep.label_sizes.get(lab, 0)}
                 for lab, c in sorted(rep.label_counts.items(), key=lambda kv: -rep.label_share(kv[0]))[:20]}
    over = [lab for lab in per_label if rep.label_share(lab) >= cfg.repeated_share
            and rep.label_sizes.get(lab, 0) >= MIN_LABEL_ROWS]
    count = len(rep.rows)
    topical = is_topical(rep.key, label) and rep.share < cfg.repeated_share
    concentration = (max(rep.label_counts.values()) / count) if rep.label_counts else None
    message = f'{count} rows ({rep.share:.1%}) {what} "{rep.key}"'
    if field.name == "target":
        message = f"{message} in the target texts"
    if label is not None:
        message += f"; in label '{label}': {rep.label_counts.get(label, 0)}/{rep.label_sizes[label]} rows ({label_share:.0%})"
        if concentration is not None and concentration >= 0.9 and len(rep.label_sizes) > 1:
            message += f", and {concentration:.0%} of its rows are '{label}' (the phrase predicts the label)"
    examples = [{"id": field.ids[i], "text": field.raw[i][:300]} for i in rep.rows[:3]]
    evidence = {
        "field": field.name,
        "phrase": rep.key,
        "count": count,
        "share": round(rep.share, 4),
        "n_rows": len(field.ids),
        "top_label": label,
        "top_label_share": round(label_share, 4),
        "label_concentration": None if concentration is None else round(concentration, 4),
        "per_label": per_label,
        "labels_over_threshold": over,
        "threshold": cfg.repeated_share,
        "topical": topical,
        "formulaic": is_formulaic(rep.key),
        "examples": examples,
    }
    if topical:
        message += " (uses the label's own topic words: likely natural phrasing)"
    severity = Severity.LOW if topical else severity_for(top_share, cfg.repeated_share)
    question_stem = (rep.share < cfg.repeated_share and label_share < 0.3 and not is_formulaic(rep.key)
                     and not topical)
    if question_stem:
        severity = Severity.LOW
        message += " (a plain phrasing common in one label, no politeness formula)"
    return Finding(
        check=check_name, severity=severity, message=message,
        rows=[field.ids[i] for i in rep.rows[:1000]], labels=over or ([label] if label else []),
        evidence=evidence, split=split,  # type: ignore[arg-type]
    )


def _rank(rep: Repeat) -> float:
    return max(rep.share, rep.max_label[1])


def _repeated_opening(ctx: AuditContext) -> list[Finding]:
    """Openings (first N words after masking names/ids/numbers) shared by many rows."""
    cfg = ctx.config.checks
    n_words = cfg.opening_words
    findings = []
    for field in text_fields(ctx.train):
        tokens = [t.split() for t in field.view.normalized]
        repeats = find_repeats(opening_keys(tokens, n_words), field.labels, cfg.repeated_share)
        repeats = sorted(repeats, key=_rank, reverse=True)[:MAX_FINDINGS_PER_FIELD]
        extended: dict[str, Repeat] = {}
        for rep in repeats:
            longer = _extend_opening(rep, tokens, n_words, field.labels)
            extended.setdefault(longer.key, longer)
        findings += [repeat_finding(rep, "repeated_opening", "open with", field, cfg)
                     for rep in sorted(extended.values(), key=_rank, reverse=True)]
    return findings


def _repeated_ending(ctx: AuditContext) -> list[Finding]:
    """Last sentences (normalised, slots masked) shared by many rows: sign-offs."""
    cfg = ctx.config.checks
    findings = []
    for field in text_fields(ctx.train):
        repeats = find_repeats(ending_keys(field.view.masked), field.labels, cfg.repeated_share)
        repeats = sorted(repeats, key=_rank, reverse=True)[:MAX_FINDINGS_PER_FIELD]
        findings += [repeat_finding(rep, "repeated_ending", "end with", field, cfg) for rep in repeats]
    return findings


class LabelShare(Record):
    """How many rows of one label a phrase or frame covers."""

    count: int
    share: float
    label_rows: int


class RowExample(Record):
    id: RowId
    text: str


class RepeatEvidence(Evidence):
    """A repeated opening or ending, overall and per label."""

    field: str
    phrase: str
    count: int
    share: float
    n_rows: int
    top_label: str | None
    top_label_share: float
    label_concentration: float | None
    per_label: dict[str, LabelShare]
    labels_over_threshold: list[str]
    threshold: float
    topical: bool
    formulaic: bool
    examples: list[RowExample]


class RepeatedOpening(Check):
    """Openings (first N words after masking names/ids/numbers) shared by many rows."""

    name = "repeated_opening"
    description = "The same first words open many rows (overall or within a label)"
    recommendation = "Strip or vary the stock opening lines; a model can learn the label from the greeting."
    Evidence = RepeatEvidence

    def run(self, ctx: AuditContext) -> list[Finding]:
        return _repeated_opening(ctx)

    def subject(self, f: Finding) -> str | None:
        ev = self.evidence(f, RepeatEvidence)
        return f"{ev.field}: {ev.phrase}" if ev is not None else None


class RepeatedEnding(Check):
    """Last sentences (normalised, slots masked) shared by many rows: sign-offs."""

    name = "repeated_ending"
    description = "The same closing sentence (sign-off) ends many rows"
    recommendation = "Strip or vary the stock sign-offs; they add nothing and can become a shortcut."
    Evidence = RepeatEvidence

    def run(self, ctx: AuditContext) -> list[Finding]:
        return _repeated_ending(ctx)

    def subject(self, f: Finding) -> str | None:
        ev = self.evidence(f, RepeatEvidence)
        return f"{ev.field}: {ev.phrase}" if ev is not None else None
