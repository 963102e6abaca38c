"""Deterministic verification of the revised guide: every label covered, every quoted example
verbatim in the data with that label, every colliding pair ruled, no label invented, every
LLM-written field short and non-empty.

Each rule is a small function returning a list of problems (empty = passed), so the guide job can
repair or mark exactly the item that failed and the tests can exercise each rule alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from audit_agent.features.text import normalize, words
from audit_agent.tasks.guide import (
    EXAMPLE_WHEN,
    INSTRUCTION_PHRASES,
    LABEL_SHOT,
    MAX_DEFINITION_CHARS,
    MAX_WHEN_CHARS,
    LabelSection,
    LabelText,
    PairRule,
    PairSection,
    pair_key,
)

MIN_WORDS = 3
MIN_CONTENT_CHARS = 4
STEM_CHARS = 5
_STOP_WORDS = """
about above after again also another been before being between both could does doing down during each
from have having here into just like message messages more most only other over same should some such
than that their them then there these they this those through under until very want what when where
which while will with would your label labels customer customers person people user users asks asking
"""
_STOP = frozenset(_STOP_WORDS.split())
_BACKTICKED = re.compile(r"`([^`\n]{1,60})`")
_SNAKE = re.compile(r"\b[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+\b")
_MARKUP = re.compile(r"[{}\[\]<>]|\\n|^\s*(definition|not_this|winner|when)\s*:", re.IGNORECASE)


@dataclass(frozen=True)
class ItemCheck:
    """The outcome of one verification rule on one guide item (a row of guide_verification.csv)."""

    item: str
    rule: str
    passed: bool
    detail: str = ""


def invented_labels(text: str, labels: Iterable[str]) -> list[str]:
    """Label-like names in `text` (backticked words, snake_case tokens) that are not real labels."""
    known = {str(lab) for lab in labels}
    known_lower = {k.lower() for k in known}
    found = {m.strip() for m in _BACKTICKED.findall(text)} | set(_SNAKE.findall(text))
    return sorted(f for f in found if f not in known and f.lower() not in known_lower)


def backticked_unknown(markdown: str, labels: Iterable[str]) -> list[str]:
    """Backticked names in the guide's own lines (quoted data rows excluded) that are not labels."""
    own = "\n".join(line for line in markdown.splitlines() if not line.lstrip("-* ").startswith(">")
                    and not line.startswith("|"))
    known = {str(lab) for lab in labels}
    return sorted({m.strip() for m in _BACKTICKED.findall(own)} - known)


def context_words(*texts: str) -> set[str]:
    """Word stems (first 5 letters of words of 4+ letters, stop words left out) of label names and
    example texts: what an LLM-written field has to mention to be about this label."""
    out: set[str] = set()
    for text in texts:
        for w in words(text.replace("_", " ")):
            if len(w) >= MIN_CONTENT_CHARS and w not in _STOP:
                out.add(w[:STEM_CHARS])
    return out


def copies(value: str, example: str, threshold: float = 80.0) -> bool:
    """True when `value` is (nearly) the prompt's worked example (rapidfuzz token-set ratio)."""
    from rapidfuzz import fuzz

    return bool(value.strip()) and fuzz.token_set_ratio(normalize(value), normalize(example)) >= threshold


def grounded(value: str, vocabulary: set[str]) -> bool:
    """True when `value` shares at least one content-word stem with `vocabulary`."""
    return bool(context_words(value) & vocabulary)


def _text_problems(field: str, value: str, max_chars: int, labels: Sequence[str],
                   vocabulary: set[str] | None = None) -> list[str]:
    value = value or ""
    problems = []
    low = value.lower()
    echoed = [p for p in INSTRUCTION_PHRASES if p in low]
    if echoed:
        problems.append(f"{field} repeats the prompt's instructions ({echoed[0]!r})")
    if vocabulary and value.split() and not grounded(value, vocabulary):
        problems.append(f"{field} mentions nothing from the label names or their examples")
    if len(value.split()) < MIN_WORDS:
        problems.append(f"{field} is empty or shorter than {MIN_WORDS} words")
    if len(value) > max_chars:
        problems.append(f"{field} is {len(value)} characters (limit {max_chars})")
    if _MARKUP.search(value):
        problems.append(f"{field} contains markup or field names instead of prose")
    bad = invented_labels(value, labels)
    if bad:
        problems.append(f"{field} names labels that do not exist: {', '.join(bad[:5])}")
    return problems


def check_label_text(label: str, reply: LabelText, labels: Sequence[str],
                     vocabulary: set[str] | None = None) -> list[str]:
    """Problems with the LLM's definition / not_this for `label` (empty list = passed).
    `vocabulary` (see `context_words`): the definition must mention something from it."""
    problems = _text_problems("definition", reply.definition, MAX_DEFINITION_CHARS, labels, vocabulary)
    problems += _text_problems("not_this", reply.not_this, MAX_DEFINITION_CHARS, labels)
    d, n = reply.definition.strip().lower(), reply.not_this.strip().lower()
    if d and d == n:
        problems.append("not_this repeats the definition")
    if d.strip(" .\"'`") in {label.lower(), label.lower().replace("_", " ")}:
        problems.append("definition only repeats the label name")
    if copies(reply.definition, LABEL_SHOT["definition"]) or copies(reply.not_this, LABEL_SHOT["not_this"]):
        problems.append("copies the prompt's worked example instead of describing this label")
    return problems


def check_pair_rule(label_a: str, label_b: str, reply: PairRule, labels: Sequence[str],
                    vocabulary: set[str] | None = None) -> list[str]:
    """Problems with the LLM's tie-break rule for the pair (empty list = passed). `vocabulary`:
    context words of both labels and their examples; the condition must mention one of them."""
    problems = []
    if reply.winner not in (label_a, label_b):
        problems.append(f"winner '{reply.winner}' is not one of '{label_a}', '{label_b}'")
    problems += _text_problems("when", reply.when, MAX_WHEN_CHARS, labels, vocabulary)
    if copies(reply.when, EXAMPLE_WHEN):
        problems.append("when copies the prompt's example instead of describing this pair")
    if reply.when.strip().lower() in {"", "when a message", "when a message fits both"}:
        problems.append("when gives no condition")
    return problems


def check_examples(label: str, examples: Sequence[str], frame: pd.DataFrame) -> list[str]:
    """Each quoted example must occur verbatim in the data, and every row with that text must carry
    `label` (a text that also occurs under another label is no example of either)."""
    problems = []
    labels_by_text = _labels_by_text(frame)
    for ex in examples:
        found = labels_by_text.get(ex)
        if found is None:
            problems.append(f"example not found verbatim in the data: {ex[:80]!r}")
        elif found != {label}:
            others = ", ".join(sorted(found - {label})) or "-"
            if label not in found:
                problems.append(f"example does not carry label '{label}' (carries {others}): {ex[:80]!r}")
            else:
                problems.append(f"example text also occurs with label(s) {others}: {ex[:80]!r}")
    return problems


def _labels_by_text(frame: pd.DataFrame) -> dict[str, set[str]]:
    cached = frame.attrs.get("_labels_by_text")
    if cached is None:
        cached = {}
        for text, lab in zip(frame["text"].tolist(), frame["label"].tolist(), strict=True):
            if lab is not None:
                cached.setdefault(text, set()).add(str(lab))
        frame.attrs["_labels_by_text"] = cached
    return cached


def missing_labels(sections: Mapping[str, LabelSection], labels: Iterable[str]) -> list[str]:
    """Dataset labels with no section in the guide."""
    return sorted(set(labels) - set(sections))


def extra_labels(sections: Mapping[str, LabelSection], labels: Iterable[str]) -> list[str]:
    """Guide sections for labels the dataset does not have (invented labels)."""
    return sorted(set(sections) - set(labels))


def missing_pairs(rules: Mapping[tuple[str, str], PairSection], pairs: Iterable[tuple[str, str]]) -> list[
        tuple[str, str]]:
    """Colliding pairs from the findings with no tie-break rule."""
    have = {pair_key(*k) for k in rules}
    return sorted({pair_key(*p) for p in pairs} - have)


def verify_guide(sections: Mapping[str, LabelSection], rules: Mapping[tuple[str, str], PairSection],
                 labels: Sequence[str], pairs: Iterable[tuple[str, str]], frame: pd.DataFrame,
                 markdown: str) -> list[ItemCheck]:
    """Every rule over the assembled guide; one ItemCheck per item and rule."""
    checks: list[ItemCheck] = []
    miss = missing_labels(sections, labels)
    checks.append(ItemCheck("guide", "every label covered", not miss, ", ".join(miss[:20])))
    extra = extra_labels(sections, labels)
    checks.append(ItemCheck("guide", "no label invented (sections)", not extra, ", ".join(extra[:20])))
    headings = set(re.findall(r"^### `([^`]+)`\s*$", markdown, re.MULTILINE))
    absent = sorted(set(labels) - headings)
    checks.append(ItemCheck("guide", "every label has a heading in revised_guide.md", not absent,
                            ", ".join(absent[:20])))
    mp = missing_pairs(rules, pairs)
    checks.append(ItemCheck("guide", "every colliding pair has a rule", not mp,
                            ", ".join(f"{a}/{b}" for a, b in mp[:20])))
    body_invented = backticked_unknown(markdown, labels)
    checks.append(ItemCheck("guide", "no label invented (text)", not body_invented, ", ".join(body_invented[:20])))
    for label in labels:
        sec = sections.get(label)
        if sec is None:
            continue
        ex_problems = check_examples(label, sec.examples, frame)
        if not sec.examples:
            ex_problems = ["no example quoted"]
        checks.append(ItemCheck(f"label:{label}", "examples verbatim and carry the label", not ex_problems,
                                "; ".join(ex_problems)))
        text_problems = check_label_text(label, LabelText(definition=sec.definition, not_this=sec.not_this),
                                         labels, context_words(label, *sec.examples)) \
            if sec.status != "needs review" else []
        checks.append(ItemCheck(f"label:{label}", "definition and not_this well formed",
                                sec.status != "needs review" and not text_problems,
                                "; ".join(text_problems or sec.problems)))
    for key, rule in rules.items():
        examples = [ex for lab in key if lab in sections for ex in sections[lab].examples]
        problems = [] if rule.status == "needs review" else check_pair_rule(
            rule.label_a, rule.label_b, PairRule(winner=rule.winner, when=rule.when), labels,
            context_words(*key, *examples))
        checks.append(ItemCheck(f"pair:{key[0]}|{key[1]}", "tie-break rule well formed",
                                rule.status != "needs review" and not problems,
                                "; ".join(problems or rule.problems)))
    return checks
