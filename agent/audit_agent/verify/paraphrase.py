"""Deterministic verification of paraphrase candidates. Each rule is a function returning
(passed, detail) so a rejected candidate keeps the exact reason, and each rule is tested alone.

Rules (names as they appear in the review file's checks_passed / checks_failed columns):
- well_formed: a single message of sane length, not an echo of the instructions or of JSON, and
  not written in the support agent's voice ("I'm here to help you ...", "I'm sorry, I ...", "your
  card" where the source says "my card")
- keeps_label: the classifier puts the candidate in its label, or gives the label at least
  `label_ratio` of the top class's probability
- judge_keeps_label: (only when configured) the LLM judge answers "yes"
- messier: the candidate's polish score is at least `min_polish_drop` below its source's
- not_near_source / not_near_candidates / not_near_existing: the near-duplicate check's similarity
  (bag-of-words Jaccard where words one typo apart match, on normalised text) below `near_threshold`
- no_template_frame: does not open with the source's first words nor contain a template frame
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from audit_agent.features.text import normalize

CHECK_NAMES = ("well_formed", "keeps_label", "judge_keeps_label", "messier", "not_near_source",
               "not_near_candidates", "not_near_existing", "no_template_frame")
_ECHO = re.compile(r"\b(rewrite|rewritten|rephrase|paraphrase|message:|label|json)\b|[{}]|^\s*(sure|here)\b",
                   re.IGNORECASE)
_ASSISTANT_VOICE = re.compile(r"\b(assist you|help you|here to help|i can'?t help|i cannot help|i'?m unable to|"
                              r"i am unable to|as an ai|how can i help|apologi[sz]e for|sorry for (any|the) inconvenience|"
                              r"(did ?n'?t|do ?n'?t|do not|did not) have the ability|try again later|further assistance|"
                              r"if you need (any )?(further|more) help)\b|^\s*i'?m sorry,? i\b",
                              re.IGNORECASE)
_MY_THING = re.compile(r"\bmy\s+([a-z]{3,})\b", re.IGNORECASE)


_SLOT = re.compile(r"\{[^{}]*\}")


@dataclass(frozen=True)
class VerifySettings:
    """Thresholds of the paraphrase verification (defaults documented in docs/guide-and-paraphrase.md)."""

    min_polish_drop: float = 0.1
    near_threshold: float = 0.8
    label_ratio: float = 0.5
    opening_words: int = 4
    frame_coverage: float = 0.8
    min_chars: int = 3
    max_length_ratio: float = 2.5


Result = tuple[bool, str]


def check_well_formed(candidate: str, source: str, s: VerifySettings = VerifySettings()) -> Result:
    text = candidate.strip()
    if len(text) < s.min_chars or not re.search(r"[A-Za-z]", text):
        return False, "empty or no words"
    if len(text) > s.max_length_ratio * max(len(source), 40):
        return False, f"{len(text)} characters, over {s.max_length_ratio}x the source"
    if "\n" in text:
        return False, "more than one line"
    if _ECHO.search(text):
        return False, "echoes the instructions (rewrite/label/json) instead of being a message"
    if _ASSISTANT_VOICE.search(text):
        return False, "written as the support agent's reply, not as the customer's message"
    flipped = [w for w in {m.lower() for m in _MY_THING.findall(source)}
               if re.search(rf"\byour\s+{re.escape(w)}\b", text, re.IGNORECASE)]
    if flipped:
        return False, f"speaks to the customer ('your {flipped[0]}' where the source says 'my {flipped[0]}')"
    from audit_agent.tasks.paraphrase import SHOT

    if similarity(text, SHOT["rewrite"]) >= s.near_threshold or similarity(text, SHOT["text"]) >= s.near_threshold:
        return False, "copies the prompt's worked example"
    return True, ""


def check_keeps_label(label: str, probs: np.ndarray, classes: Sequence[str],
                      s: VerifySettings = VerifySettings()) -> Result:
    """`probs`: the classifier's class probabilities for the candidate (aligned with `classes`)."""
    if label not in classes:
        return False, f"label '{label}' unknown to the classifier"
    p = float(probs[list(classes).index(label)])
    top = int(np.argmax(probs))
    top_p = float(probs[top])
    detail = f"p({label})={p:.2f}; top {classes[top]} {top_p:.2f}"
    if classes[top] == label or p >= s.label_ratio * top_p:
        return True, detail
    return False, detail


def check_judge(answer: str | None) -> Result:
    if answer is None:
        return False, "judge gave no usable answer"
    return answer == "yes", f"judge said {answer}"


def check_messier(polish_source: float, polish_candidate: float, s: VerifySettings = VerifySettings()) -> Result:
    drop = polish_source - polish_candidate
    detail = f"polish {polish_source:.2f} -> {polish_candidate:.2f}"
    return drop >= s.min_polish_drop, detail


def similarity(a: str, b: str) -> float:
    """The near-duplicate check's similarity of two texts after normalisation (1.0 = same text)."""
    na, nb = normalize(a), normalize(b)
    if na == nb:
        return 1.0
    try:
        from audit_agent.features.word_similarity import text_similarity
    except ImportError:  # pragma: no cover - features/neighbors.py ships with the package
        from rapidfuzz import fuzz

        return fuzz.token_set_ratio(na, nb) / 100.0
    return float(text_similarity(na.split(), nb.split()))


def check_not_near(candidate: str, others: Iterable[str], s: VerifySettings = VerifySettings()) -> Result:
    """Fails when `candidate` is a near-duplicate of any of `others` (best match in the detail)."""
    best, best_text = 0.0, ""
    for other in others:
        sim = similarity(candidate, other)
        if sim > best:
            best, best_text = sim, other
    if best >= s.near_threshold:
        return False, f"similarity {best:.2f} to {best_text[:60]!r}"
    return True, f"max similarity {best:.2f}"


def check_not_near_existing(matches: Sequence[tuple[str, float]], s: VerifySettings = VerifySettings()) -> Result:
    """`matches`: (row id, similarity) of existing rows found by the near-duplicate index."""
    hits = [(rid, sim) for rid, sim in matches if sim >= s.near_threshold]
    if hits:
        rid, sim = max(hits, key=lambda h: h[1])
        return False, f"near-duplicate of existing row {rid} (similarity {sim:.2f})"
    return True, ""


def opening(text: str, n: int) -> str:
    return " ".join(normalize(text).split()[:n])


def check_no_template_frame(candidate: str, source: str, frames: Iterable[str],
                            s: VerifySettings = VerifySettings()) -> Result:
    """Fails when the candidate opens like its source (first `opening_words` words) or holds at least
    `frame_coverage` of the fixed words (outside `{SLOT}` markers) of a frame from template_frame."""
    cand = normalize(candidate)
    src_open = opening(source, s.opening_words)
    if len(src_open.split()) >= min(3, s.opening_words) and " ".join(cand.split()[:s.opening_words]) == src_open:
        return False, f"opens like its source: {src_open!r}"
    words = set(cand.split())
    for frame in frames:
        fixed = normalize(_SLOT.sub(" ", frame)).split()
        if len(fixed) < 3:
            continue
        covered = sum(w in words for w in fixed) / len(fixed)
        if covered >= s.frame_coverage:
            return False, f"repeats {covered:.0%} of the template frame {frame[:80]!r}"
    return True, ""
