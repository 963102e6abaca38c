"""Text normalisation and tokenisation shared by the checks."""

from __future__ import annotations

import re
import unicodedata

_WS = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_WORD = re.compile(r"[a-z0-9']+|[^\W\d_]+", re.UNICODE)


def normalize(text: str) -> str:
    """Lowercase, NFKC, punctuation dropped, whitespace folded: two rows that differ only in
    case, spacing or punctuation normalise to the same string."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _PUNCT.sub(" ", text)
    return _WS.sub(" ", text).strip()


def words(text: str) -> list[str]:
    """Lowercase word tokens (letters, digits, apostrophes)."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())
