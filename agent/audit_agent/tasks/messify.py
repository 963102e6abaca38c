"""Seeded, deterministic "real-style" surface transforms for paraphrase candidates.

The LLM rephrases (indirect ask, clipped, irritated); `messify` then gives the text the surface
style of the real batch: greetings and sign-offs clipped, lowercase, no end punctuation, no
apostrophes ("cant"), abbreviations ("pls", "u", "thx") and keyboard typos (adjacent-key swap or a
dropped letter), each applied with the real batch's share (`targets_from_real`) or a default. The
same function with `core` > 0 also makes the rule-only fallback candidate from a source row.

Candidate `slot` k of `slots` gets stratified draws (one stratum of [0, 1) per slot, strata shuffled
per row), so the k candidates of a row get different transforms while each transform's share over
many rows still equals its target. A step that would add a word of the label name is undone.

tasks/stress_variants.py builds the one-trait variants of `audit-agent stress` on these transforms.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

_GREETING = re.compile(
    r"^\s*(?:(?:hi|hello|hey|hiya|greetings|good\s+(?:morning|afternoon|evening)|dear\s+[\w ]{0,30}?)"
    r"(?:\s+(?:there|team|all|everyone|support|folks))?\s*[,!.:;-]*\s+)?"
    r"(?:i\s+hope\s+(?:you(?:'re|\s+are)\s+(?:doing\s+)?well|this\s+(?:message|email)\s+finds\s+you\s+well|"
    r"you(?:'re|\s+are)\s+having\s+a\s+(?:good|great|nice)\s+day)[^.!?]*[.!?]+\s*)?",
    re.IGNORECASE)
_SIGN_OFF_SENTENCE = re.compile(
    r"(?:^|(?<=[.!?,]))\s*(?:(?:thank\s+you|thanks|many\s+thanks|thx|cheers|(?:best|kind|warm)\s+regards|"
    r"regards|sincerely|best\s+wishes|i\s+(?:really\s+)?appreciate\s+(?:your|any|the)\s+help|"
    r"any\s+help\s+(?:would\s+be|is)\s+(?:greatly\s+|much\s+)?appreciated|have\s+a\s+(?:nice|good|great)\s+day)"
    r"\b[^.!?]{0,60}[.!?]*\s*)+$",
    re.IGNORECASE)
END_PUNCT = re.compile(r"[.!?…]+[\"')\]]*\s*$")
APOSTROPHE = re.compile(r"(?<=[A-Za-z])['’](?=[A-Za-z])")
SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")
# formal padding a real customer rarely types; replaced by the plain form ("" = dropped)
_FILLERS = [
    (re.compile(r"\b(could|would|can)\s+you\s+(?:please|kindly)\b", re.IGNORECASE), r"\1 you"),
    (re.compile(r"\bi\s+would\s+like\s+to\b", re.IGNORECASE), "I want to"),
    (re.compile(r"\bi'?d\s+like\s+to\b", re.IGNORECASE), "I want to"),
    (re.compile(r"\bi\s+was\s+wondering\s+(?:if|whether)\s+", re.IGNORECASE), ""),
    (re.compile(r"\bwould\s+it\s+be\s+possible\s+to\b", re.IGNORECASE), "can i"),
    (re.compile(r",?\s*\b(?:please|kindly)\b,?", re.IGNORECASE), ""),
]
_SMALL_WORDS = re.compile(r"\b(?:just|really|very|actually|basically|simply|currently|also)\s+", re.IGNORECASE)
ABBREVIATIONS = {
    "please": "pls", "you": "u", "your": "ur", "thanks": "thx", "because": "bc", "tomorrow": "tmrw",
    "though": "tho", "okay": "ok", "message": "msg", "people": "ppl", "before": "b4", "with": "w",
    "something": "smth", "probably": "prob", "information": "info", "today": "2day",
}
_ABBREVIABLE = re.compile(r"\b(?:" + "|".join(ABBREVIATIONS) + r")\b", re.IGNORECASE)
_ABBREVIATED = re.compile(r"\b(?:" + "|".join(ABBREVIATIONS.values()) + r"|plz|thnx|ty)\b", re.IGNORECASE)
_CONTRACTION = re.compile(r"\b(?:[a-z]+n't|i'm|i've|i'd|i'll|it's|that's|what's|there's|you're|we're|they're)\b",
                          re.IGNORECASE)
_BARE_CONTRACTION = re.compile(r"\b(?:dont|cant|wont|isnt|doesnt|didnt|hasnt|havent|wasnt|arent|couldnt|"
                               r"wouldnt|shouldnt|im|ive|whats|thats|theres|youre)\b", re.IGNORECASE)
_KEYBOARD = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
MAX_TARGET_ROWS = 50_000


def _neighbours() -> dict[str, str]:
    """Letters next to each letter on a QWERTY keyboard (same row and the rows above/below)."""
    pos = {c: (r, i) for r, row in enumerate(_KEYBOARD) for i, c in enumerate(row)}
    out: dict[str, str] = {}
    for c, (r, i) in pos.items():
        near = [d for d, (r2, i2) in pos.items() if d != c and abs(r2 - r) <= 1 and abs(i2 - i) <= 1]
        out[c] = "".join(sorted(near))
    return out


NEIGHBOURS = _neighbours()
TRANSFORMS = ("clip_greeting", "clip_sign_off", "clip_core", "lowercase", "drop_end_punct", "drop_apostrophes",
              "abbreviate", "typo")


@dataclass(frozen=True)
class StyleTargets:
    """Share of messages with each surface trait (typo_rate: share of words of 4+ letters mistyped)."""

    lowercase: float = 0.5
    no_end_punct: float = 0.6
    no_apostrophe: float = 0.4
    abbreviation: float = 0.2
    typo_rate: float = 0.03
    keep_greeting: float = 0.0
    keep_sign_off: float = 0.0
    source: str = "defaults"

    def as_dict(self) -> dict[str, float | str]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Messified:
    """A transformed text and the transforms that changed it (e.g. ["clip_greeting", "typo:2"])."""

    text: str
    transforms: list[str]


def _share(hit: pd.Series, eligible: pd.Series) -> float | None:
    n = int(eligible.sum())
    return float((hit & eligible).sum()) / n if n else None


def targets_from_real(texts: Sequence[str] | pd.Series, style: pd.DataFrame | None = None) -> StyleTargets:
    """Style targets measured on a real batch: the shares of all-lowercase rows, rows without end
    punctuation, contractions written without the apostrophe, rows using abbreviations (among rows
    with an abbreviable word or an abbreviation), greetings and sign-offs; and the mean typo rate
    (from `style`, the batch's `features.style.style_frame`, when given). Traits the batch never
    gives a chance to show keep their default."""
    series = pd.Series(list(texts), dtype=object).fillna("").astype(str).str.strip()
    keep = (series.str.len() > 0).to_numpy()
    if style is not None and len(style) == len(series):
        style = style[keep]
    series = series[keep]
    n_rows = len(series)
    if n_rows > MAX_TARGET_ROWS:  # shares are stable long before this; keeps 1M-row batches fast
        series = series.sample(MAX_TARGET_ROWS, random_state=0)
    default = StyleTargets()
    if series.empty:
        return default
    has_letters = series.str.contains(r"[A-Za-z]", regex=True)
    lower = has_letters & ~series.str.contains(r"[A-Z]", regex=True)
    no_end = ~series.str.contains(END_PUNCT.pattern, regex=True)
    bare = series.str.count(_BARE_CONTRACTION.pattern, flags=re.IGNORECASE)
    full = series.str.count(_CONTRACTION.pattern, flags=re.IGNORECASE)
    n_contractions = int(bare.sum() + full.sum())
    abbreviated = series.str.contains(_ABBREVIATED.pattern, flags=re.IGNORECASE, regex=True)
    abbreviable = series.str.contains(_ABBREVIABLE.pattern, flags=re.IGNORECASE, regex=True)
    greeting = series.map(_has_greeting)
    sign_off = series.map(lambda t: _SIGN_OFF_SENTENCE.search(t) is not None)
    typo = float(style["typo_rate"].mean()) if style is not None and "typo_rate" in style else default.typo_rate
    abbreviation = _share(abbreviated, abbreviated | abbreviable)
    return StyleTargets(
        lowercase=float(lower.mean()),
        no_end_punct=float(no_end.mean()),
        no_apostrophe=float(bare.sum()) / n_contractions if n_contractions else default.no_apostrophe,
        abbreviation=abbreviation if abbreviation is not None else default.abbreviation,
        typo_rate=typo,
        keep_greeting=float(greeting.mean()),
        keep_sign_off=float(sign_off.mean()),
        source=f"real batch ({n_rows} rows" + (f", {len(series)} sampled)" if len(series) < n_rows else ")"),
    )


def _has_greeting(text: str) -> bool:
    m = _GREETING.match(text)
    return bool(m and m.group(0).strip())


def row_seed(seed: int, row_id: str) -> int:
    """A stable per-row seed (the same on every run and machine)."""
    return zlib.crc32(f"{seed}:{row_id}".encode())


def _label_word_count(text: str, words: Sequence[str]) -> int:
    low = text.lower()
    return sum(len(re.findall(rf"\b{re.escape(w)}\b", low)) for w in words)


def clip_frame(text: str, keep_greeting: bool = False, keep_sign_off: bool = False) -> tuple[str, list[str]]:
    """Remove an opening greeting ("Hi there, I hope you're doing well.") and a closing sign-off
    ("Thanks in advance for your help!"), unless that would leave fewer than two words."""
    done: list[str] = []
    out = text.strip()
    if not keep_greeting:
        m = _GREETING.match(out)
        rest = out[m.end():] if m else out
        if m and m.group(0).strip() and len(rest.split()) >= 2:
            out = rest
            done.append("clip_greeting")
    if not keep_sign_off:
        rest = _SIGN_OFF_SENTENCE.sub("", out).rstrip(" ,;:-")
        if rest != out and len(rest.split()) >= 2:
            out = rest
            done.append("clip_sign_off")
    if done and out[:1].islower() and text.strip()[:1].isupper():
        out = out[0].upper() + out[1:]
    return out, done


def clip_core(text: str, level: int) -> str:
    """Clip formal padding: level 1 drops "please"/"kindly" and plain-forms "I would like to";
    level 2 also drops filler words (just, really, very, ...) and keeps at most the first two
    sentences."""
    out = text
    if level >= 1:
        for pattern, repl in _FILLERS:
            out = pattern.sub(repl, out)
    if level >= 2:
        out = _SMALL_WORDS.sub("", out)
        sentences = SENTENCE_BREAK.split(out)
        if len(sentences) > 2:
            out = " ".join(sentences[:2])
    out = re.sub(r"\s+([,.!?])", r"\1", " ".join(out.split())).strip(" ,")
    return out if len(out.split()) >= 2 else text


def _typo(word: str, rng: np.random.Generator) -> str:
    """One keyboard slip in `word`: a letter swapped for a neighbouring key, or dropped (never the first)."""
    i = int(rng.integers(1, len(word)))
    c = word[i]
    if c.lower() in NEIGHBOURS and rng.random() < 0.6:
        near = NEIGHBOURS[c.lower()]
        new = near[int(rng.integers(len(near)))]
        return word[:i] + (new.upper() if c.isupper() else new) + word[i + 1:]
    return word[:i] + word[i + 1:]


def typo_words(text: str, rate: float, rng: np.random.Generator, avoid: Sequence[str]) -> tuple[str, int]:
    """Keyboard slips in about `rate` of the words of 4+ letters (none in or making a word of `avoid`);
    the new text and the number of slips."""
    count = 0

    def slip(m: re.Match[str]) -> str:
        nonlocal count
        word = m.group(0)
        if rng.random() >= rate or word.lower() in avoid:
            return word
        new = _typo(word, rng)
        if new.lower() in avoid:
            return word
        count += 1
        return new

    return re.sub(r"\b[A-Za-z]{4,}\b", slip, text), count


def _abbreviate(text: str) -> str:
    def short(m: re.Match[str]) -> str:
        return ABBREVIATIONS[m.group(0).lower()]

    return _ABBREVIABLE.sub(short, text)


def stratified_draws(seed: int, slot: int, slots: int, n: int) -> np.ndarray:
    """`n` uniform draws for candidate `slot` of `slots`: per draw, the row's slots get distinct strata
    of [0, 1) (shuffled per row), so each is uniform on its own but the slots of a row differ."""
    slots = max(1, slots)
    row_rng = np.random.default_rng([seed, 7919])
    strata = np.stack([row_rng.permutation(slots) for _ in range(n)])[:, slot % slots]
    jitter = np.random.default_rng([seed, slot, 104729]).random(n)
    return (strata + jitter) / slots


def messify(text: str, targets: StyleTargets, *, seed: int, slot: int = 0, slots: int = 1,
            avoid: Iterable[str] = (), core: int = 0) -> Messified:
    """Apply the real-style surface transforms to `text` (deterministic for the same arguments).

    `avoid`: words (the label name's) a transform must not add; `core` > 0 also clips formal padding
    (see `clip_core`), used for the rule-only fallback candidate."""
    words = [w.lower() for w in avoid if w]
    draws = dict(zip(("greeting", "sign_off", "lowercase", "end", "apostrophe", "abbreviate"),
                     stratified_draws(seed, slot, slots, 6), strict=True))
    rng = np.random.default_rng([seed, slot, 15485863])
    done: list[str] = []
    out, clipped = clip_frame(text, keep_greeting=draws["greeting"] < targets.keep_greeting,
                              keep_sign_off=draws["sign_off"] < targets.keep_sign_off)
    done += clipped

    def step(name: str, new: str) -> None:
        nonlocal out
        if new != out and len(new.split()) >= 1 and _label_word_count(new, words) <= _label_word_count(out, words):
            out = new
            done.append(name)

    if core > 0:
        step("clip_core", clip_core(out, core))
    if draws["apostrophe"] < targets.no_apostrophe:
        step("drop_apostrophes", APOSTROPHE.sub("", out))
    if draws["abbreviate"] < targets.abbreviation:
        step("abbreviate", _abbreviate(out))
    if draws["lowercase"] < targets.lowercase:
        step("lowercase", out.lower())
    if draws["end"] < targets.no_end_punct:
        step("drop_end_punct", END_PUNCT.sub("", out).rstrip())
    typoed, n_typos = typo_words(out, targets.typo_rate, rng, words)
    if n_typos:
        before = len(done)
        step("typo", typoed)
        if len(done) > before:
            done[-1] = f"typo:{n_typos}"
    return Messified(text=" ".join(out.split()), transforms=done)
