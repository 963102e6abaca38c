"""Stress scoring, pure: messy variants of labelled rows (tasks/messify.py), verified to keep their
label by a deterministic checker classifier, and a model's accuracy per variant kind against the
same rows' clean texts.

1. `make_variants`: each row's clean text plus one variant per kind; a mixed_intent variant borrows a
   short phrase of a row of another label (picked by a per-row seed from `donors`).
2. `verify_variants`: a variant is dropped (with its reason, see `DROP_REASONS`) when the rewrite
   left the text unchanged, when the same text is also a (variant of a) row of another label (very
   short variants of template openings collide), when the style features do not see its trait, or when the checker (a
   `features.classifier.TextClassifier` fitted on the training rows) does not keep it in its label
   (the label is its top class or has at least `label_ratio` of the top class's probability, the
   paraphrase verification's rule).
3. `attach_predictions` + `score`: per kind the accuracy of the kept, answered variants, the accuracy
   on the clean texts of the same rows and the drop; a label the model invents counts as wrong and is
   listed; the worst failures are the variants the model got wrong after getting the clean text right,
   those the checker is surest keep their label first.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from audit_agent.jobs.stress_result import DROP_REASONS, Failure, KindScore, StressResult, Variant
from audit_agent.tasks.messify import row_seed
from audit_agent.tasks.stress_variants import STRESS_KINDS, stress_variant
from audit_agent.verify.judge import canonical_label
from audit_agent.verify.paraphrase import VerifySettings, check_keeps_label

TRAIT_COLUMNS = {"very_short": "is_short", "typos": "has_typo", "no_punctuation": "no_punct",
                 "lowercase": "all_lowercase", "mixed_intent": "multi_intent", "indirect": "indirect_request",
                 "emotional": "emotional"}
MAX_FAILURES_PER_KIND = 5
MAX_UNKNOWN_SHOWN = 20


class Checker(Protocol):
    """What verification needs of a classifier (`features.classifier.TextClassifier` fits)."""

    classes: list[str]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...


def _donor_index(donors: pd.DataFrame) -> dict[str, list[str]]:
    texts: dict[str, list[str]] = defaultdict(list)
    for text, label in zip(donors["text"].astype(str), donors["label"].astype(str), strict=True):
        texts[label].append(text)
    return dict(texts)


def make_variants(rows: pd.DataFrame, donors: pd.DataFrame, kinds: Sequence[str] = STRESS_KINDS,
                  seed: int = 0) -> list[Variant]:
    """Per row of `rows` (columns id, text, label): its clean text, then one variant per kind
    (unverified). `donors` (text, label: the training rows) lend mixed_intent their second ask."""
    unknown = [k for k in kinds if k not in STRESS_KINDS]
    if unknown:
        raise ValueError(f"unknown variant kind(s) {', '.join(unknown)} (known: {', '.join(STRESS_KINDS)})")
    by_label = _donor_index(donors)
    out: list[Variant] = []
    for rid, text, label in zip(rows["id"].astype(str), rows["text"].astype(str), rows["label"].astype(str),
                                strict=True):
        out.append(Variant(row_id=rid, kind="clean", label=label, text=text))
        s = row_seed(seed, rid)
        others = sorted(lab for lab in by_label if lab != label)
        for kind in kinds:
            other = ""
            if kind == "mixed_intent" and others:
                pool = by_label[others[s % len(others)]]
                other = pool[(s // len(others)) % len(pool)]
            variant = text if kind == "mixed_intent" and not other else stress_variant(kind, text, seed=s, other=other)
            out.append(Variant(row_id=rid, kind=kind, label=label, text=variant))
    return out


def verify_variants(variants: list[Variant], checker: Checker, *, label_ratio: float = 0.5) -> list[Variant]:
    """Mark each variant kept or dropped (`reason`), in place; clean rows are always kept. Every text
    gets the checker's label and its probability of the row's label."""
    from audit_agent.features.style import label_words, style_frame

    if not variants:
        return variants
    settings = VerifySettings(label_ratio=label_ratio)
    texts = [v.text for v in variants]
    probs = checker.predict_proba(texts)
    classes = list(checker.classes)
    col = {c: i for i, c in enumerate(classes)}
    style = style_frame(texts, extra_words=label_words(classes))  # label words are spelled right
    keeps = [check_keeps_label(v.label, probs[i], classes, settings)[0] for i, v in enumerate(variants)]
    labels_of: dict[str, set[str]] = defaultdict(set)
    for v in variants:
        labels_of[" ".join(v.text.split())].add(v.label)
    clean = {v.row_id: (" ".join(v.text.split()), keeps[i]) for i, v in enumerate(variants) if v.kind == "clean"}
    for i, v in enumerate(variants):
        v.checker_label = classes[int(np.argmax(probs[i]))]
        v.checker_p = round(float(probs[i][col[v.label]]), 4) if v.label in col else None
        if v.kind == "clean":
            continue
        source, clean_keeps = clean.get(v.row_id, ("", True))
        if " ".join(v.text.split()) == source:
            v.kept, v.reason = False, "unchanged"
        elif len(labels_of[" ".join(v.text.split())]) > 1:
            v.kept, v.reason = False, "ambiguous"
        elif not bool(style[TRAIT_COLUMNS[v.kind]].iloc[i]):
            v.kept, v.reason = False, "no_trait"
        elif not keeps[i]:
            v.kept, v.reason = False, "label_changed" if clean_keeps else "label_unverifiable"
    return variants


def texts_to_predict(variants: Sequence[Variant]) -> list[str]:
    """The distinct texts the model must answer: clean rows and kept variants, first-seen order."""
    return list(dict.fromkeys(v.text for v in variants if v.kept))


def attach_predictions(variants: Sequence[Variant], answers: Mapping[str, str | None],
                       labels: Sequence[str], errors: Mapping[str, str] | None = None) -> None:
    """Set `predicted` and `correct` of every kept variant from `answers` (text -> label, None = no
    answer; `errors` text -> why). A label outside `labels` (after case/punctuation folding) is wrong."""
    label_set = set(labels)
    for v in variants:
        if not v.kept:
            continue
        answer = answers.get(v.text)
        if answer is None:
            v.error = (errors or {}).get(v.text, "no answer")
            continue
        v.predicted = answer
        v.correct = canonical_label(answer, label_set) == v.label


def _unknown(variants: Sequence[Variant], labels: Sequence[str]) -> Counter[str]:
    label_set = set(labels)
    return Counter(v.predicted for v in variants
                   if v.predicted is not None and canonical_label(v.predicted, label_set) is None)


def _kind_score(kind: str, group: Sequence[Variant], clean_correct: Mapping[str, bool | None],
                labels: Sequence[str]) -> KindScore:
    scored = [v for v in group if v.correct is not None]
    pairs = [(bool(clean_correct[v.row_id]), bool(v.correct)) for v in scored
             if clean_correct.get(v.row_id) is not None]
    correct = sum(bool(v.correct) for v in scored)
    dropped = Counter(v.reason for v in group if not v.kept and v.reason)
    return KindScore(
        kind=kind, made=len(group), kept=sum(v.kept for v in group),
        dropped={r: dropped[r] for r in DROP_REASONS if dropped[r]}, scored=len(scored),
        unanswered=sum(v.kept and v.correct is None for v in group), correct=correct,
        accuracy=round(correct / len(scored), 4) if scored else None,
        clean_accuracy=round(sum(c for c, _ in pairs) / len(pairs), 4) if pairs else None,
        drop=round(sum(c - k for c, k in pairs) / len(pairs), 4) if pairs else None,
        unknown_labels=sum(_unknown(group, labels).values()))


def worst_failures(variants: Sequence[Variant], per_kind: int = MAX_FAILURES_PER_KIND) -> list[Failure]:
    """Per kind, up to `per_kind` variants the model got wrong after getting their clean text right,
    the ones the checker is surest still carry their label first."""
    labels_of: dict[str, set[str]] = defaultdict(set)
    for v in variants:
        labels_of[" ".join(v.text.split())].add(v.label)
    clean = {v.row_id: v for v in variants if v.kind == "clean"}
    flips: dict[str, list[Variant]] = defaultdict(list)
    for v in variants:
        source = clean.get(v.row_id)
        if v.kind != "clean" and v.correct is False and source is not None and source.correct:
            flips[v.kind].append(v)
    out = []
    for kind, group in flips.items():
        group.sort(key=lambda v: (-(v.checker_p or 0.0), v.row_id))
        out += [Failure(kind=kind, row_id=v.row_id, label=v.label, predicted=str(v.predicted),
                        clean_text=clean[v.row_id].text, text=v.text, checker_p=v.checker_p)
                for v in group[:per_kind]]
    return out


def score(variants: Sequence[Variant], labels: Sequence[str], *, model: str, checker: str,
          kinds: Sequence[str] = STRESS_KINDS) -> StressResult:
    """The stress result of variants that carry their predictions."""
    by_kind: dict[str, list[Variant]] = defaultdict(list)
    for v in variants:
        by_kind[v.kind].append(v)
    clean_correct = {v.row_id: v.correct for v in by_kind["clean"]}
    unknown = _unknown(variants, labels)
    notes = []
    unanswered = sum(v.kept and v.correct is None for v in variants)
    if unanswered:
        notes.append(f"{unanswered} texts got no answer (see `error` in stress.json); they are left out of "
                     "the accuracies")
    if unknown:
        notes.append(f"the model answered {sum(unknown.values())} times with a label that is not in the label "
                     f"set ({len(unknown)} distinct); these count as wrong")
    return StressResult(
        model=model, checker=checker, rows=len(by_kind["clean"]), labels=list(labels), kinds=list(kinds),
        clean=_kind_score("clean", by_kind["clean"], clean_correct, labels),
        per_kind=[_kind_score(k, by_kind[k], clean_correct, labels) for k in kinds],
        failures=worst_failures(variants),
        unknown_predictions=dict(unknown.most_common(MAX_UNKNOWN_SHOWN)),
        notes=notes, variants=list(variants))
