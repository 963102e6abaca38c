"""Slot masking: replace the parts of a text a template fills in (names, dates, times, numbers, money,
emails, URLs, order/ticket ids, product names) with typed placeholders such as <NAME> or <ID>.

Two rows made from one template mask to the same skeleton. `mask_many` runs each regex once over
all texts joined into one string, so masking 1,000,000 rows costs a handful of C-level regex passes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


def _wordlist(text: str) -> list[str]:
    return text.split()


_MONTH_WORDS = _wordlist("january february march april june july august september october november december "
                "jan feb mar apr jun jul aug sep sept oct nov dec")
_BARE_DATE_WORDS = _wordlist("january february april june july august september october november december "
                    "monday tuesday wednesday thursday friday saturday sunday")


def _words_regex(words: list[str], title_only: bool = False) -> str:
    """A fast whole-word alternation of `words` in lower and Title case.

    Case-sensitive, factorised by first letter and led by a first-letter lookahead: several times
    faster in `re` than a flat `\\b(?:a|b|...)` alternation or re.IGNORECASE.
    """
    forms = sorted({f for w in words for f in ((w.title(),) if title_only else (w, w.title()))})
    firsts = sorted({f[0] for f in forms})
    body = "|".join(
        f"{first}(?:" + "|".join(sorted({f[1:] for f in forms if f[0] == first}, key=lambda r: (-len(r), r))) + ")"
        for first in firsts)
    return f"(?=[{''.join(firsts)}])(?<![A-Za-z])(?:{body})\\b"


_FIRST_NAMES = _wordlist(
    "James John Robert Michael William David Richard Joseph Thomas Charles Christopher Daniel Matthew "
    "Anthony Mark Donald Steven Paul Andrew Joshua Kevin Brian George Timothy Ronald Edward Jason Jeffrey "
    "Ryan Jacob Gary Nicholas Eric Jonathan Stephen Larry Justin Scott Brandon Benjamin Samuel Gregory "
    "Alexander Patrick Frank Raymond Jack Dennis Jerry Tyler Aaron Jose Adam Nathan Henry Peter Zachary "
    "Kyle Noah Ethan Jeremy Christian Sean Liam Lucas Oliver Mason Logan Alex Sam Max Tom Ben Dan Mike "
    "Chris Carlos Luis Juan Ahmed Mohammed Ali Omar Raj Arjun Wei Li Chen Hiroshi Kenji Ivan Dmitri "
    "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty Margaret "
    "Sandra Ashley Kimberly Emily Donna Michelle Carol Amanda Dorothy Melissa Deborah Stephanie Rebecca "
    "Sharon Laura Cynthia Kathleen Amy Angela Shirley Anna Brenda Pamela Emma Nicole Helen Samantha "
    "Katherine Christine Debra Rachel Carolyn Janet Catherine Maria Heather Diane Julie Olivia Sophia "
    "Isabella Mia Charlotte Amelia Harper Evelyn Abigail Ella Grace Chloe Zoe Lily Hannah Sophie Kate "
    "Jane Lucy Priya Aisha Fatima Sofia Elena Ana Yuki Mei"
)

# (placeholder, pattern, replacement) in application order: specific before generic.
_S = r"[^\S\n]"  # whitespace that never crosses the row separator
_BARE_DATE = re.compile(_words_regex(_BARE_DATE_WORDS))
_MONTH = _words_regex([*_MONTH_WORDS, "may"])
_RULES: list[tuple[str, re.Pattern[str], str]] = [
    ("URL", re.compile(r"\b(?:https?://|www\.)[^\s<>]+"), "<URL>"),
    ("EMAIL", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), "<EMAIL>"),
    ("MONEY", re.compile(
        rf"[$€£¥]{_S}?\d[\d,]*(?:\.\d+)?(?:{_S}?[kKmM]\b)?"
        rf"|\b\d[\d,]*(?:\.\d+)?{_S}?(?:USD|EUR|GBP|"
        rf"{_words_regex(['usd', 'eur', 'gbp', 'dollars', 'dollar', 'euros', 'euro', 'pounds', 'pound', 'bucks'])})"),
        "<MONEY>"),
    ("DATE", re.compile(
        r"\b\d{4}-\d{1,2}-\d{1,2}\b|\b\d{1,2}[/.]\d{1,2}[/.]\d{2,4}\b|\b\d{1,2}/\d{1,2}\b"
        rf"|\b\d{{1,2}}(?:st|nd|rd|th)?{_S}(?:of{_S})?{_MONTH}(?:,?{_S}\d{{4}}\b)?"), "<DATE>"),
    ("DATE", re.compile(rf"{_MONTH}(?:\.?{_S}\d{{1,2}}(?:st|nd|rd|th)?\b(?:,?{_S}\d{{4}}\b)?|{_S}\d{{4}}\b)"),
     "<DATE>"),
    ("DATE", _BARE_DATE, "<DATE>"),
    ("TIME", re.compile(rf"\b\d{{1,2}}:\d{{2}}(?::\d{{2}})?(?:{_S}?[aApP]\.?[mM]\b\.?)?|\b\d{{1,2}}{_S}?[aApP]\.?[mM]\b\.?"),
     "<TIME>"),
    ("PRODUCT", re.compile(
        r"\b(my|the|a|an|new|this|that|your|our|old) "
        r"((?:[A-Z][\w]*|i[A-Z]\w*)(?: [A-Z][\w]*)*(?: [A-Z]{0,3}\d+[A-Za-z]*)(?: (?:Pro|Max|Plus|Ultra|Mini|Lite))?)"),
        r"\1 <PRODUCT>"),
    ("ID", re.compile(
        rf"#{_S}?\w*\d\w*|\b[A-Z]{{2,}}[-_]?\d[\w-]*"
        r"|\b[A-Za-z]+(?:-[A-Za-z]+)*-?\d[A-Za-z0-9]*(?:-[A-Za-z0-9]+)*\b"
        r"|\b\d+(?!(?:st|nd|rd|th)\b)-?[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*\b"
        r"|\b\d{5,}\b"), "<ID>"),
    ("NUM", re.compile(r"\b\d+(?:[.,]\d+)*(?:st|nd|rd|th)?\b"), "<NUM>"),
    ("NAME", re.compile(
        r"(?:^|(?<=[.!?:] )|(?<=\x1f))(?:" + _words_regex(_FIRST_NAMES, title_only=True).replace("(?<![A-Za-z])", "")
        + r")(?: [A-Z][a-z]+\b)?"
        r"|(?<=[a-z0-9,;:] )[A-Z][a-z]+\b(?:[ -][A-Z][a-z]+\b)*", re.MULTILINE), "<NAME>"),
]
_DIGIT = re.compile(r"\d")
_DIGIT_RULES = [r for r in _RULES[2:] if r[0] not in ("NAME",) and r[1].pattern != _BARE_DATE.pattern]
_WORD_RULES = [r for r in _RULES if r[0] == "NAME" or r[1].pattern == _BARE_DATE.pattern]
_WORD_RULES.append(("REPEAT", re.compile(r"<([A-Z]+)>(?:[^\S\n]*<\1>)+"), r"<\1>"))
_NL = "\x1f"  # stands in for a line break inside a row (str.isspace() and regex \s treat it as space)
_PLACEHOLDER = re.compile(r"<(URL|EMAIL|MONEY|DATE|TIME|PRODUCT|ID|NUM|NAME)>")
_NORM_DROP = re.compile(r"[^\w\s<>']+")
_WS = re.compile(r"[^\S\n]+")
SLOT_TYPES = tuple(name for name, _, _ in _RULES)


def _sub_subset(rows: list[str], keep: list[int], rules: list[tuple[str, re.Pattern[str], str]]) -> None:
    """Apply `rules` in place to the rows at positions `keep`, as one joined string."""
    if not keep:
        return
    joined = "\n".join(rows[i] for i in keep)
    for _, pattern, repl in rules:
        joined = pattern.sub(repl, joined)
    for i, line in zip(keep, joined.split("\n"), strict=True):
        rows[i] = line


def mask_many(texts: Sequence[str]) -> list[str]:
    """Mask the slots of every text (keeps case and punctuation).

    Each rule runs once over the joined rows that can match it (URL/email rules only on rows with
    '@' or '://' or 'www.', digit rules only on rows with a digit), so cost is a few C-level passes.
    """
    rows = [t.replace("\r\n", _NL).replace("\n", _NL).replace("\r", _NL) for t in texts]
    if not rows:
        return []
    web = [i for i, t in enumerate(rows) if "@" in t or "://" in t or "www." in t]
    _sub_subset(rows, web, _RULES[:2])
    digits = [i for i, t in enumerate(rows) if _DIGIT.search(t)]
    _sub_subset(rows, digits, _DIGIT_RULES)
    _sub_subset(rows, list(range(len(rows))), _WORD_RULES)
    return rows


def mask(text: str) -> str:
    """Mask the slots of one text."""
    return mask_many([text])[0]


def normalize_many(masked: Sequence[str]) -> list[str]:
    """Lowercase and drop punctuation, keeping placeholders as the tokens `<name>`, `<id>`, ...
    (works on unmasked texts too)."""
    if not masked:
        return []
    joined = "\n".join(t.replace("\n", " ").replace("\r", " ") for t in masked).lower()
    joined = _NORM_DROP.sub(" ", joined)
    joined = _WS.sub(" ", joined)
    return [line.strip() for line in joined.split("\n")]


def slot_values(text: str) -> dict[str, list[str]]:
    """The slot values of one text, by placeholder type, in order of masking (for examples only)."""
    found: dict[str, list[str]] = {}
    current = text.replace("\n", _NL)
    for name, pattern, repl in _RULES:
        def record(match: re.Match[str], name: str = name, repl: str = repl) -> str:
            value = match.group(2) if name == "PRODUCT" else match.group(0)
            found.setdefault(name, []).append(value.strip())
            return match.expand(repl)

        current = pattern.sub(record, current)
    return found


def as_frame(masked_text: str) -> str:
    """Render a masked text as a frame with `{SLOT}` markers."""
    return _PLACEHOLDER.sub(r"{\1}", masked_text).replace(_NL, "\n")


def has_slot(masked_text: str) -> bool:
    """Whether a (masked or normalised) text holds at least one placeholder."""
    return _PLACEHOLDER.search(masked_text.upper()) is not None


@dataclass
class SlotView:
    """Masked and normalised versions of a list of texts, aligned with it."""

    masked: list[str]
    normalized: list[str]


_CACHE: dict[str, tuple[Sequence[str], SlotView]] = {}


def slot_view(texts: Sequence[str], key: str = "text") -> SlotView:
    """Masked + normalised texts; the last result per `key` is cached (checks share one computation)."""
    hit = _CACHE.get(key)
    if hit is not None and (hit[0] is texts or (len(hit[0]) == len(texts) and list(hit[0]) == list(texts))):
        return hit[1]
    masked = mask_many(texts)
    view = SlotView(masked=masked, normalized=normalize_many(masked))
    _CACHE[key] = (list(texts), view)
    return view
