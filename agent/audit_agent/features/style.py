"""Per-row style and messiness measurements: how a text is written, not what it says.

`style_frame(texts)` returns one row per text with the columns below (vectorised with pyarrow's RE2
string kernels and numpy; 1M short rows take about 4 s of CPU). `split_style(data, split, ...)` is the
per-split version; the checks read it cached, through `ctx.features.style(split)`.

| column | meaning |
|---|---|
| n_chars | characters after stripping outer whitespace |
| n_words | word tokens (letters/digits/apostrophes) |
| is_short | 1-4 words ("refund??", "card declined") |
| all_lowercase | has letters and none is upper case |
| starts_capitalised | the first letter is upper case |
| no_end_punct | does not end with . ? ! ... or a closing quote/bracket after one |
| no_punct | no punctuation character at all |
| n_questions | number of '?' |
| typo_rate | share of alphabetic tokens that look misspelled (see below) |
| has_typo | typo_rate > 0 |
| multi_intent | two or more '?', or two requests joined by "and also", "also", "plus", " & ", "as well as", "additionally" |
| n_exclaim | number of '!' |
| caps_words | ALL-CAPS words of 3+ letters that are not common acronyms (ATM, PIN, ...) |
| frustration | uses a frustration/urgency word ("ridiculous", "again", "still", "wtf", "asap", "pls", ...) |
| emotional | n_exclaim > 0, caps_words > 0, frustration, or "??" |
| request_marker | asks for something: a question word, modal request, "please", "i want/need", an imperative opener |
| indirect_request | no '?' and no request marker: a statement of the problem ("my card got swallowed by the atm") |
| formal | formal politeness ("could you please", "i would like", "kindly", "thank you", ...) |
| polish | 0-1: long, capitalised, end-punctuated, typo-free, formally polite and calm; high = over-polished |

Typos are judged against wordfreq's 30,000 most frequent English words when `wordfreq` is installed
(rarer words wordfreq lists are fine unless one edit from a far more common word: "recieve").
Without it, a small common-words list written for this module is used, and an unlisted word is a typo
only when it is one edit away from a listed word or from a word the texts use far more often.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from audit_agent.dataset import AuditData, Dataset

STYLE_COLUMNS = [
    "n_chars", "n_words", "is_short", "all_lowercase", "starts_capitalised", "no_end_punct", "no_punct",
    "n_questions", "typo_rate", "has_typo", "multi_intent", "n_exclaim", "caps_words", "frustration",
    "emotional", "request_marker", "indirect_request", "formal", "polish",
]
SHORT_WORDS = 4
WORDFREQ_TOP_N = 30_000
WORDFREQ_RARE_N = 100_000
MISSPELLING_RANK_RATIO = 8
FALLBACK_FREQ_RATIO = 8
FALLBACK_LISTED_MAX = 20
FALLBACK_MAX_CHECKED = 50_000

_TRIM_CHARS = "\"'.,;:!?()[]{}<>-_*/\\|~`@#$%^&+=…“”‘’«»"
_HAS_WORDCHAR = re.compile(r"[a-z0-9]")
_ALPHA_TOKEN = re.compile(r"^[a-z]+(?:'[a-z]+)?$")
_END_PUNCT = r"[.?!…][\"')\]]*\s*$"
_PUNCT_ANY = r"[\p{P}\p{S}]"
_MULTI_JOIN = r"\band also\b|\balso\b|\bplus\b|\s&\s|\bas well as\b|\badditionally\b|\bone more thing\b"
_FRUSTRATION_WORDS = [
    "ridiculous", "again", "still", "annoyed", "annoying", "wtf", "asap", "pls", "plz", "seriously",
    "unacceptable", "frustrated", "frustrating", "terrible", "awful", "useless", "angry", "ugh", "omg",
    "urgent", "urgently", "hate", "worst", "joke", "fed up", "sick of", "come on", "why is this",
    "nobody", "ffs", "damn", "immediately", "now!",
]
_FRUSTRATION = r"\b(?:" + "|".join(re.escape(w) for w in _FRUSTRATION_WORDS) + r")"
_REQUEST = (
    r"^\s*(?:how|what|why|when|where|which|who|whom|whose|is|are|am|was|were|do|does|did|can|could|would|"
    r"will|should|shall|may|might|have|has|had|cancel|change|send|give|show|tell|help|fix|stop|block|"
    r"freeze|unfreeze|unblock|reset|update|activate|add|remove|delete|close|open|transfer|refund|top|"
    r"check|verify|explain|find|get|make|set|order|replace|return|pay|let|please|pls|plz|need|want|"
    r"i'd|id)\b"
    r"|\b(?:please|pls|plz|kindly|help me|can you|could you|would you|will you|can i|could i|may i|"
    r"how do|how can|how to|how long|how much|how many|what is|what's|what are|why is|why does|why did|"
    r"i want|i need|i'd like|i would like|i wish to|want to|need to|tell me|show me|let me know|"
    r"is it possible|is there|are there|do i|does it|i have to|where can|where is|where do|when will)\b"
)
_FORMAL = (
    r"\b(?:could you please|would you please|can you please|i would like|i'd like to|i would appreciate|"
    r"kindly|thank you|thanks in advance|would it be possible|i was wondering|please advise|"
    r"please let me know|please could|may i|dear|regards|sincerely)\b"
)
_CAPS_WORD = r"\b[A-Z]{3,}\b"
_ACRONYMS = frozenset({
    "ATM", "PIN", "USD", "EUR", "GBP", "USA", "NFC", "SMS", "OTP", "APP", "API", "IBAN", "SWIFT", "BIC",
    "CVV", "CVC", "KYC", "FAQ", "URL", "PDF", "VAT", "TAX", "UPS", "DHL", "ETA", "CEO", "ASAP", "LOL",
    "BTW", "FYI", "IRS", "SSN", "DOB", "AML", "SEPA", "ACH", "UAE", "CAD", "AUD", "JPY", "CHF", "WIFI",
    "GPS", "SIM", "USB", "DNS", "VPN", "ID", "IOS", "MAC", "OMG", "WTF", "FFS", "TBH", "IMO",
})

# Written for this module: very common English words, used only when wordfreq is not installed.
_COMMON_WORDS = """
a about above account accounts across actually add added address after again against ago all allow
allowed almost already also always am amount an and another any anyone anything app apply are area
around as ask asked at atm available away back bad balance bank be because been before being below
best better between big bill both bought but buy by call can cancel cancelled card cards case cash
change changed charge charged check cheque close code come contact cost could country currency
customer day days did didn't different do does doesn't doing don't done down due during each early
easy either else email end enough even ever every exchange expired explain fee fees few find first
fix for found free from fund funds get getting give go going good got had happen happened has have
haven't having he help her here high him his hold home how however i i'd i'll i'm i've id if in info
information into is isn't it it's its just keep kind know last late later left less let like limit
limits line link lost made make many may me mean method might mine minute minutes missing mistake
money month more most much must my name need needed never new next no not nothing now number of off
office old on once one online only open or order other our out over own paid password pay payment
payments people person phone pin place please possible problem process put rate really reason
receive received refund refunds request required right said same say see seem send sent service set
should show since site so some someone something soon still stolen stop such support sure take taken
tell than thank thanks that the their them then there these they thing things think this those
though through time to today too top transaction transactions transfer transferred tried try trying
two under until up update us use used using verify very via wait waiting want wanted was way we week
weeks well went were what when where whether which while who why will with withdraw withdrawal
without won't work working would wrong year years yes yet you your
"""


@lru_cache(maxsize=1)
def known_words() -> frozenset[str]:
    """The English word list typo_rate is measured against (lowercase): wordfreq's most frequent
    words when it is installed, else the small list written for this module."""
    try:
        from wordfreq import top_n_list
    except ImportError:
        return frozenset(_COMMON_WORDS.split())
    return frozenset(top_n_list("en", WORDFREQ_TOP_N))


def has_wordfreq() -> bool:
    """True when typo rates use wordfreq's list (else the small fallback list plus frequent words)."""
    return len(known_words()) > len(_COMMON_WORDS.split())


@lru_cache(maxsize=1)
def _rare_word_ranks() -> tuple[dict[str, int], dict[str, int]]:
    """wordfreq ranks of the less common words (rank WORDFREQ_TOP_N..WORDFREQ_RARE_N) and of the
    common ones (for the misspelling test)."""
    from wordfreq import top_n_list

    words = top_n_list("en", WORDFREQ_RARE_N)
    rare = {w: i for i, w in enumerate(words) if i >= WORDFREQ_TOP_N}
    common = {w: i for i, w in enumerate(words[:WORDFREQ_TOP_N])}
    return rare, common


def _one_edit(word: str) -> set[str]:
    """Every string one deletion, transposition, substitution or insertion away from `word`."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = {a + b[1:] for a, b in splits if b}
    transposes = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    replaces = {a + c + b[1:] for a, b in splits if b for c in letters}
    inserts = {a + c + b for a, b in splits for c in letters}
    return (deletes | transposes | replaces | inserts) - {word}


def _corpus_misspelling(token: str, freq: Mapping[str, int], listed: frozenset[str]) -> bool:
    """Fallback typo test (no wordfreq): a token of 4+ letters one edit away from a listed word or
    from a word used FALLBACK_FREQ_RATIO times more often ("recieve" among many "receive")."""
    if len(token) < 4:
        return False
    own = freq.get(token, 0)
    for word in _one_edit(token):
        affix = word.startswith(token) or token.startswith(word) or token.endswith(word)
        if affix:
            continue
        if (word in listed and own < FALLBACK_LISTED_MAX) or freq.get(word, 0) >= max(3, FALLBACK_FREQ_RATIO * own):
            return True
    return False


_RARE_VERDICT: dict[str, bool] = {}


def _is_misspelling(token: str) -> bool:
    """A token wordfreq does not count among the common words is a typo unless it is a real but
    rarer word: listed by wordfreq and not one edit away from a common word at least
    MISSPELLING_RANK_RATIO times more frequent ("recieve" -> "receive"; "renews" and "purifier" are
    fine). Rare words one letter from a common one ("dented" / "denied") count as typos."""
    if token in _RARE_VERDICT:
        return _RARE_VERDICT[token]
    rare, common_rank = _rare_word_ranks()
    rank = rare.get(token)
    verdict = rank is None
    if rank is not None:
        for word in _one_edit(token):
            other = common_rank.get(word)
            affix = word.startswith(token) or token.startswith(word) or token.endswith(word)
            if other is not None and not affix and other * MISSPELLING_RANK_RATIO <= rank:
                verdict = True
                break
    if len(_RARE_VERDICT) < 200_000:
        _RARE_VERDICT[token] = verdict
    return verdict


def as_arrow(texts: Sequence[str] | pd.Series) -> pa.StringArray:
    """Texts as a pyarrow string array: outer whitespace stripped, missing values empty."""
    series = texts if isinstance(texts, pd.Series) else pd.Series(list(texts), dtype=object)
    arr = pa.array(series.fillna("").astype(str), type=pa.string(), from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pc.utf8_trim_whitespace(arr)


def word_tokens(lower: pa.StringArray) -> tuple[pa.Array, np.ndarray]:
    """Whitespace tokens with outer punctuation trimmed, and the row each token belongs to."""
    split = pc.utf8_split_whitespace(lower)
    rows = pc.list_parent_indices(split).to_numpy()
    tokens = pc.utf8_trim(pc.list_flatten(split), characters=_TRIM_CHARS)
    return tokens, rows


def tokens_by_row(texts: Sequence[str] | pd.Series) -> pd.Series:
    """Lowercase word tokens (outer punctuation trimmed), indexed by row position."""
    tokens, rows = word_tokens(pc.utf8_lower(as_arrow(texts)))
    out = pd.Series(tokens.to_numpy(zero_copy_only=False), index=rows, dtype=object)
    return out[out.str.len() > 0]


def _token_stats(lower: pa.StringArray, vocabulary: frozenset[str], extra_words: set[str],
                 reference_counts: Mapping[str, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """Per row: number of word tokens and share of alphabetic tokens not in the word list."""
    n = len(lower)
    if n == 0:
        return np.zeros(0, int), np.zeros(0)
    tokens, rows = word_tokens(lower)
    encoded = pc.dictionary_encode(tokens)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    uniques = encoded.dictionary.to_pylist()
    is_word = np.fromiter((bool(_HAS_WORDCHAR.search(u)) for u in uniques), bool, len(uniques))
    is_alpha = np.fromiter((bool(_ALPHA_TOKEN.match(u)) for u in uniques), bool, len(uniques))
    known = np.fromiter((u in vocabulary or u in extra_words for u in uniques), bool, len(uniques))
    if has_wordfreq():
        # rarer real words ("purifier", "renews") are spelled right; common misspellings are not
        unknown = np.flatnonzero(is_alpha & ~known)
        known[unknown] = [not _is_misspelling(uniques[i]) for i in unknown]
    else:
        # the fallback list is small: an unlisted word is a typo only when it is one edit away
        # from a listed word or from a word these texts (and the reference) use far more often
        counts = np.bincount(codes, minlength=len(uniques))
        freq = dict(reference_counts or {})
        for u, c in zip(uniques, counts.tolist(), strict=True):
            freq[u] = freq.get(u, 0) + c
        unknown = np.flatnonzero(is_alpha & ~known)
        unknown = unknown[np.argsort(-counts[unknown], kind="stable")][:FALLBACK_MAX_CHECKED]
        known[unknown] = [not _corpus_misspelling(uniques[i], freq, vocabulary) for i in unknown]
    n_words = np.bincount(rows, weights=is_word[codes], minlength=n).astype(int)
    n_alpha = np.bincount(rows, weights=is_alpha[codes], minlength=n)
    n_typo = np.bincount(rows, weights=(is_alpha & ~known)[codes], minlength=n)
    typo_rate = np.divide(n_typo, n_alpha, out=np.zeros(n), where=n_alpha > 0)
    return n_words, typo_rate


def _has(arr: pa.StringArray, pattern: str) -> np.ndarray:
    return pc.match_substring_regex(arr, pattern).to_numpy(zero_copy_only=False).astype(bool)


def _count(arr: pa.StringArray, pattern: str) -> np.ndarray:
    return pc.count_substring_regex(arr, pattern).to_numpy(zero_copy_only=False).astype(int)


def style_frame(texts: Sequence[str] | pd.Series, extra_words: Iterable[str] = (),
                reference_counts: Mapping[str, int] | None = None) -> pd.DataFrame:
    """Per-row style measurements of `texts` (see the module docstring for every column).

    `extra_words` are treated as correctly spelled (e.g. the words of the label names). Without
    wordfreq, word frequencies of `texts` plus `reference_counts` (e.g. the training set's) decide
    which unlisted words are misspellings (see `_corpus_misspelling`).
    Runs on pyarrow's RE2 string kernels, so 1M rows take a few seconds."""
    arr = as_arrow(texts)
    lower = pc.replace_substring(pc.utf8_lower(arr), "’", "'")
    n_words, typo_rate = _token_stats(lower, known_words(), {w.lower() for w in extra_words}, reference_counts)
    n_questions = _count(arr, r"\?")
    n_exclaim = _count(arr, "!")
    caps_words = _caps_words(arr)
    no_end_punct = ~_has(arr, _END_PUNCT)
    starts_capitalised = _has(arr, r"^[^A-Za-z]*[A-Z]")
    frustration = _has(lower, _FRUSTRATION)
    emotional = (n_exclaim > 0) | (caps_words > 0) | frustration | _has(arr, r"\?\?")
    request_marker = _has(lower, _REQUEST)
    formal = _has(lower, _FORMAL)
    length_score = np.clip(n_words / 12.0, 0, 1)
    polish = (
        0.25 * length_score + 0.2 * starts_capitalised + 0.2 * ~no_end_punct
        + 0.15 * (1 - np.clip(typo_rate * 4, 0, 1)) + 0.1 * formal + 0.1 * ~emotional
    )
    out = pd.DataFrame({
        "n_chars": pc.utf8_length(arr).to_numpy(zero_copy_only=False).astype(int),
        "n_words": n_words,
        "is_short": (n_words > 0) & (n_words <= SHORT_WORDS),
        "all_lowercase": _has(arr, "[a-z]") & ~_has(arr, "[A-Z]"),
        "starts_capitalised": starts_capitalised,
        "no_end_punct": no_end_punct,
        "no_punct": ~_has(arr, _PUNCT_ANY),
        "n_questions": n_questions,
        "typo_rate": typo_rate,
        "has_typo": typo_rate > 0,
        "multi_intent": (n_questions >= 2) | _has(lower, _MULTI_JOIN),
        "n_exclaim": n_exclaim,
        "caps_words": caps_words,
        "frustration": frustration,
        "emotional": emotional,
        "request_marker": request_marker,
        "indirect_request": (n_questions == 0) & ~request_marker,
        "formal": formal,
        "polish": polish,
    })
    return out[STYLE_COLUMNS]


def _caps_words(arr: pa.StringArray) -> np.ndarray:
    """Count of ALL-CAPS words (3+ letters) per row that are not common acronyms."""
    n = len(arr)
    counts = np.zeros(n, dtype=int)
    maybe = np.flatnonzero(_has(arr, _CAPS_WORD))
    if maybe.size == 0:
        return counts
    found = pd.Series(pc.take(arr, pa.array(maybe)).to_pylist(), index=maybe).str.findall(_CAPS_WORD).explode()
    found = found.dropna()
    found = found[~found.isin(_ACRONYMS)]
    if not found.empty:
        counts += np.bincount(found.index.to_numpy(dtype=int), minlength=n)
    return counts


def label_words(labels: Iterable[str]) -> set[str]:
    """The lowercase words of label names ("card_arrival" -> {"card", "arrival"})."""
    return {w for lab in labels for w in re.findall(r"[a-z0-9]+", str(lab).lower())}


def split_style(data: AuditData, split: str, reference_counts: dict[str, int] | None) -> pd.DataFrame:
    """The style frame of one split ("train", "eval" or "real"); `Features.style` caches it per run.

    Label-name words count as correctly spelled; `reference_counts` (see `train_token_counts`) are the
    word counts a row's words are judged against when wordfreq is missing."""
    ds = getattr(data, split)
    if ds is None:
        raise ValueError(f"no {split} split in this run")
    return style_frame(ds.frame["text"], extra_words=label_words(data.train.label_set),
                       reference_counts=reference_counts)


def train_token_counts(train: Dataset) -> dict[str, int] | None:
    """Without wordfreq: the training set's token counts, so eval and real rows are judged against
    the same word frequencies as train (None when wordfreq is installed)."""
    if has_wordfreq():
        return None
    tokens, _ = word_tokens(pc.utf8_lower(as_arrow(train.frame["text"])))
    counts = pc.value_counts(tokens)
    return dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))
