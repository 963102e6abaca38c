"""One-trait messy variants of a text for `audit-agent stress` (STRESS_KINDS), rule-based and seeded,
built on tasks/messify.py's surface transforms: very short, typos, no punctuation, lowercase, mixed
intent (a short phrase of another label's row joined on), indirect wording and emotional (templates).
One trait per variant, so a model's accuracy drop can be put on that trait (jobs/stress.py checks
each variant shows its trait and keeps its label).
"""

from __future__ import annotations

import re

import numpy as np

from audit_agent.tasks.messify import APOSTROPHE, END_PUNCT, SENTENCE_BREAK, clip_frame, typo_words

STRESS_KINDS = ("very_short", "typos", "no_punctuation", "lowercase", "mixed_intent", "indirect", "emotional")
_FILLER = frozenset("""a an the i me my mine we us our you your u ur it its this that these those is are am
was were be been being do does did have has had will would can could should shall may might must to of in on
at for from with by about as into and or but so if then than just really very please pls kindly hi hello hey
dear thanks thank thx regards there here also know like want need wondering wonder tell let get help able
writing ask asking assistance hope well team support before after next soon reaching regarding following
matter contact contacting taking time read message""".split())  # noqa: SIM905
_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*")
_JOINERS = ("also", "and also", "plus", "one more thing:")


def _rules(*pairs: tuple[str, str]) -> list[tuple[re.Pattern[str], str]]:
    return [(re.compile(p, re.IGNORECASE), r) for p, r in pairs]


# A direct ask at a sentence start -> a statement with no question mark and no request phrase (see
# features/style.py `indirect_request`); the first rule that matches a sentence is applied.
_INDIRECT_START = _rules(
    (r"^(what|where|when|why|which|who|how much|how long|how many)\s+(is|are|was|were)\s+"
     r"(it|this|that|there|he|she|they|i|you|we)\s+(.+?)[?.!]*$", r"no idea \1 \3 \2 \4"),
    (r"^(what|where|when|why|which|who|how much|how long|how many)\s+(is|are|was|were)\s+(\S+(?:\s+\S+)?)\s+"
     r"(still|not|never|already|being|so|too|taking|getting|showing)\b(.*?)[?.!]*$", r"no idea \1 \3 \2 \4\5"),
    (r"^(what|where|when|why|which|who|how much|how long|how many)\s+(is|are|was|were)\s+(.+?)[?.!]*$",
     r"no idea \1 \3 \2"),
    (r"^how\s+(?:do|can|should|would|could)\s+i\s+|^how\s+to\s+", "no idea how i'm supposed to "),
    (r"^(what|where|when|why|which|how(?:\s+long|\s+much|\s+many|\s+often)?)\s+"
     r"(?:do|does|did|will|would|can|should)\s+(.+?)[?.!]*$", r"still trying to work out \1 \2"),
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
    (r"^how\s+come\s+", "no idea why "),
    (r"^(?=(?:what|where|when|why|which|who|how|is|are|am|was|were|do|does|did|can|could|would|will|should|"
     r"may|have|has)\b)", "been wondering "),  # any other question
)
# request phrases left inside sentences, reworded in place
_INDIRECT_INLINE = _rules(
    (r"\blet\s+me\s+know\b", "say"), (r"\b(?:tell|show)\s+me\b", "say"),
    (r"\bhow\s+(?:to|do\s+i|can\s+i)\b", "how i'm supposed to"),
    (r"\bi\s*(?:would|'d)\s+like\s+to\b|\bi\s+(?:want|need|wish)\s+to\b", "i'm looking to"),
    (r"\bi\s*(?:would|'d)\s+like\b|\bi\s+(?:want|need)\b", "i'm after"),
    (r"\b(?:help\s+me|assist\s+me)\b", "sort it out"), (r"\bi\s+have\s+to\b", "i'm meant to"),
    (r"\b(?:can|could|would|will)\s+(?:you|u)\b", "someone could"), (r"\b(?:please|pls|plz|kindly)\s+", ""),
)
_EMOTIONAL = ("{core}!! this is so frustrating", "seriously?? {core}", "ugh. {core}. not happy about this!",
              "{core}. honestly fed up with this!", "{core}!!! come on")


def very_short(text: str, max_words: int = 4) -> str:
    """At most `max_words` content words (greetings, fillers, pronouns, auxiliaries and ids dropped)
    of the last question with two, else of the first sentence with two: "Could you tell me where my
    new card is?" -> "where new card". A text of `max_words` words or fewer is returned as it is."""
    if len(text.split()) <= max_words:
        return text
    core, _ = clip_frame(text)
    sentences = SENTENCE_BREAK.split(core)
    picks = [[w for w in _WORD.findall(s) if w.lower().replace("’", "'") not in _FILLER] for s in sentences]
    asks = [p for s, p in zip(sentences, picks, strict=True) if s.rstrip().endswith("?") and len(p) >= 2]
    words = asks[-1] if asks else next((p for p in picks if len(p) >= 2), [w for p in picks for w in p])
    return " ".join(words[:max_words]) or text


def heavy_typos(text: str, seed: int, rate: float = 0.25, attempts: int = 4) -> str:
    """Keyboard slips in about `rate` of the words of 4+ letters, at least one (in the longest word);
    redrawn (up to `attempts` times) while every slip spells another English word ("please" -> "pleas")."""
    from audit_agent.features.style import known_words

    known = known_words() | {w.lower() for w in _WORD.findall(text)}
    long_words = re.findall(r"\b[A-Za-z]{4,}\b", text)
    out = text
    for attempt in range(attempts):
        rng = np.random.default_rng([seed, 2713, attempt])
        out, n = typo_words(text, rate, rng, ())
        if n == 0 and long_words:
            word = max(long_words, key=len)
            out = re.sub(rf"\b{word}\b", typo_words(word, 1.0, rng, ())[0], text, count=1)
        if any(w.lower() not in known for w in _WORD.findall(out)):
            break
    return out


def strip_punctuation(text: str) -> str:
    """Every punctuation mark and symbol removed ("can't" -> "cant", "#123," -> "123")."""
    return " ".join(re.sub(r"[^\w\s]|_", " ", APOSTROPHE.sub("", text)).split())


def mix_intent(text: str, other: str, seed: int) -> str:
    """`text` plus a second ask: a short phrase of `other` (another label's row) after a joiner."""
    phrase = very_short(other, 3).lower()
    return f"{text.strip()} {_JOINERS[seed % len(_JOINERS)]} {phrase}" + ("?" if seed % 3 == 0 else "")


def indirect(text: str) -> str:
    """Direct asks reworded as statements ("Where is my card?" -> "no idea where my card is"),
    greetings and sign-offs dropped, remaining question marks made full stops."""
    core, _ = clip_frame(text)
    sentences = []
    for sentence in SENTENCE_BREAK.split(core):
        for pattern, repl in _INDIRECT_START:
            if pattern.search(sentence):
                sentence = pattern.sub(repl, sentence[:1].lower() + sentence[1:], count=1)
                break
        for pattern, repl in _INDIRECT_INLINE:
            sentence = pattern.sub(repl, sentence)
        sentences.append(re.sub(r"\?+", ".", sentence))
    return " ".join(" ".join(sentences).split())


def emotional(text: str, seed: int) -> str:
    """The text (greetings and sign-offs dropped) in one of a few frustrated frames."""
    core = END_PUNCT.sub("", clip_frame(text)[0]).rstrip()
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
