"""Seeded, deterministic "real-style" surface transforms for paraphrase candidates.

The LLM rephrases (indirect ask, clipped, irritated); `messify` then gives the text the surface
style of the real batch: greetings and sign-offs clipped, lowercase, no end punctuation, no
apostrophes ("cant"), abbreviations ("pls", "u", "thx") and keyboard typos (adjacent-key swap or a
dropped letter), each applied with the real batch's share (`targets_from_real`) or a default. The
same function with `core` > 0 also makes the rule-only fallback candidate from a source row.

Candidate `slot` k of `slots` gets stratified draws (one stratum of [0, 1) per slot, strata shuffled
per row), so the k candidates of a row get different transforms while each transform's share over
many rows still equals its target. A step that would add a word of the label name is undone.

`stress_variant` makes one-trait variants for `audit-agent stress` (STRESS_KINDS: very short, typos,
no punctuation, lowercase, mixed intent, indirect wording, emotional), rule-based and seeded.
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
_END_PUNCT = re.compile(r"[.!?…]+[\"')\]]*\s*$")
_APOSTROPHE = re.compile(r"(?<=[A-Za-z])['’](?=[A-Za-z])")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
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
    no_end = ~series.str.contains(_END_PUNCT.pattern, regex=True)
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
        sentences = _SENTENCE.split(out)
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


def _typos(text: str, rate: float, rng: np.random.Generator, avoid: Sequence[str]) -> tuple[str, int]:
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
        step("drop_apostrophes", _APOSTROPHE.sub("", out))
    if draws["abbreviate"] < targets.abbreviation:
        step("abbreviate", _abbreviate(out))
    if draws["lowercase"] < targets.lowercase:
        step("lowercase", out.lower())
    if draws["end"] < targets.no_end_punct:
        step("drop_end_punct", _END_PUNCT.sub("", out).rstrip())
    typoed, n_typos = _typos(out, targets.typo_rate, rng, words)
    if n_typos:
        before = len(done)
        step("typo", typoed)
        if len(done) > before:
            done[-1] = f"typo:{n_typos}"
    return Messified(text=" ".join(out.split()), transforms=done)


# ---------------------------------------------------------------- stress variants
# One messy trait per variant, so a model's accuracy drop can be put on that trait (jobs/stress.py).
STRESS_KINDS = ("very_short", "typos", "no_punctuation", "lowercase", "mixed_intent", "indirect", "emotional")
_FILLER = frozenset("""a an the i me my mine we us our you your u ur it its this that these those is are am
was were be been being do does did have has had will would can could should shall may might must to of in on
at for from with by about as into and or but so if then than just really very please pls kindly hi hello hey
dear thanks thank thx regards there here also know like want need wondering wonder tell let get help able
writing ask asking assistance hope well team support before after next soon reaching regarding following
matter contact contacting taking time read message""".split())  # noqa: SIM905
_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*")
_JOINERS = ("also", "and also", "plus", "one more thing:")
# a direct ask at a sentence start -> a statement: no question mark, no request phrase (see
# features/style.py `indirect_request`); the first rule that matches a sentence is applied
_INDIRECT = [(re.compile(p, re.IGNORECASE), r) for p, r in (
    (r"^(what|where|when|why|which|who|how much|how long|how many)\s+(is|are|was|were)\s+(.+?)[?.!]*$",
     r"no idea \1 \3 \2"),
    (r"^how\s+(?:do|can|should|would|could)\s+i\s+|^how\s+to\s+", "no idea how i'm supposed to "),
    (r"^(what|where|when|why|how)\s+(?:do|does|did|will|would|can|should)\s+(.+?)[?.!]*$",
     r"still trying to work out \1 \2"),
    (r"^(?:(?:could|can|would|will)\s+(?:you|u)\s+|please\s+)*(?:(?:please\s+)?(?:tell|show)\s+me|let\s+me\s+know)\s+",
     "trying to find out "),
    (r"^(?:could|can|would|will)\s+(?:you|u)\s+(?:please\s+|kindly\s+)?(?:help\s+me\s+)?", "hoping someone can "),
    (r"^(?:please|pls|plz|kindly)\s+", "hoping someone can "),
    (r"^(?:can|could|may)\s+i\s+", "not sure if i'm allowed to "),
    (r"^i\s*(?:would|'d)\s+like\s+to\s+|^i\s+(?:want|need|wish)\s+to\s+", "i'm looking to "),
    (r"^is\s+it\s+possible\s+to\s+", "not sure if it's possible to "),
    (r"^(is|are)\s+there\s+(.+?)[?.!]*$", r"not sure there \1 \2"),
    (r"^(do|does|did|is|are|was|were|will|would)\s+(you|it|i|this|that|they|we)\s+(.+?)[?.!]*$",
     r"not sure whether \2 \1 \3"),
)]
_EMOTIONAL = ("{core}!! this is so frustrating", "seriously?? {core}", "ugh. {core}. not happy about this!",
              "{core}. honestly fed up with this!", "{core}!!! come on")


def very_short(text: str, max_words: int = 4) -> str:
    """At most `max_words` content words (greetings, fillers, pronouns, auxiliaries and ids dropped)
    of the last question with two, else of the first sentence with two: "Could you tell me where my
    new card is?" -> "where new card". A text of `max_words` words or fewer is returned as it is."""
    if len(text.split()) <= max_words:
        return text
    core, _ = clip_frame(text)
    sentences = _SENTENCE.split(core)
    picks = [[w for w in _WORD.findall(s) if w.lower().replace("’", "'") not in _FILLER] for s in sentences]
    asks = [p for s, p in zip(sentences, picks, strict=True) if s.rstrip().endswith("?") and len(p) >= 2]
    words = asks[-1] if asks else next((p for p in picks if len(p) >= 2), [w for p in picks for w in p])
    return " ".join(words[:max_words]) or text


def heavy_typos(text: str, seed: int, rate: float = 0.25) -> str:
    """Keyboard slips in about `rate` of the words of 4+ letters, at least one."""
    rng = np.random.default_rng([seed, 2713])
    out, n = _typos(text, rate, rng, ())
    long_words = re.findall(r"\b[A-Za-z]{4,}\b", text)
    if n == 0 and long_words:
        word = max(long_words, key=len)
        out = re.sub(rf"\b{word}\b", _typo(word, rng), text, count=1)
    return out


def strip_punctuation(text: str) -> str:
    """Every punctuation mark and symbol removed ("can't" -> "cant", "#123," -> "123")."""
    return " ".join(re.sub(r"[^\w\s]|_", " ", _APOSTROPHE.sub("", text)).split())


def mix_intent(text: str, other: str, seed: int) -> str:
    """`text` plus a second ask: a short phrase of `other` (another label's row) after a joiner."""
    phrase = very_short(other, 3).lower()
    return f"{text.strip()} {_JOINERS[seed % len(_JOINERS)]} {phrase}" + ("?" if seed % 3 == 0 else "")


def indirect(text: str) -> str:
    """Direct asks reworded as statements ("Where is my card?" -> "no idea where my card is"),
    greetings and sign-offs dropped, remaining question marks made full stops."""
    core, _ = clip_frame(text)
    sentences = []
    for sentence in _SENTENCE.split(core):
        for pattern, repl in _INDIRECT:
            if pattern.search(sentence):
                sentence = pattern.sub(repl, sentence[:1].lower() + sentence[1:], count=1)
                break
        sentences.append(re.sub(r"\?+", ".", sentence))
    return " ".join(" ".join(sentences).split())


def emotional(text: str, seed: int) -> str:
    """The text (greetings and sign-offs dropped) in one of a few frustrated frames."""
    core = _END_PUNCT.sub("", clip_frame(text)[0]).rstrip()
    return _EMOTIONAL[seed % len(_EMOTIONAL)].format(core=core)


def stress_variant(kind: str, text: str, *, seed: int, other: str = "") -> str:
    """The `kind` (one of STRESS_KINDS) variant of `text`; `other` is the row whose phrase a
    mixed_intent variant borrows. Deterministic for the same arguments."""
    if kind == "very_short":
        return very_short(text)
    if kind == "typos":
        return heavy_typos(text, seed)
    if kind == "no_punctuation":
        return strip_punctuation(text)
    if kind == "lowercase":
        return text.lower()
    if kind == "mixed_intent":
        return mix_intent(text, other, seed)
    if kind == "indirect":
        return indirect(text)
    if kind == "emotional":
        return emotional(text, seed)
    raise ValueError(f"unknown variant kind {kind!r} (known: {', '.join(STRESS_KINDS)})")
