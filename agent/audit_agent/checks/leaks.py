"""Label leaks: words, 2-3 word phrases and openings that predict the label far above chance.

A refund row may legitimately say "refund" (a topical word); "I would like to request" appearing only
in refund rows is a style leak a small model learns instead of the task. Each leak is marked
`kind: "style"` (made of function/politeness words, no topic word) or `"topical"`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from audit_agent.checks.base import Check
from audit_agent.checks.phrasing import is_formulaic, is_topical, opening_keys, text_fields
from audit_agent.config import CheckConfig
from audit_agent.context import AuditContext
from audit_agent.features.phrases import PhraseMatrix, ngram_matrix
from audit_agent.features.slots import normalize_many
from audit_agent.findings import Evidence, Finding, Record, RowId, Severity

MAX_LEAK_FINDINGS = 30
MIN_LIFT = 2.0
MAX_STITCH_WORDS = 30
HIGH_STYLE_SUPPORT = 20  # a style leak is high when it covers >= 10% of its label in >= this many rows
MAX_CANDIDATES = 400  # best-scoring predictive phrases (per source) that are merged and ranked
SUBSUME_KEEP = 0.8  # a longer phrase replaces a shorter one it contains when it keeps this share of its rows


def _wordlist(text: str) -> list[str]:
    return text.split()


_POLITE = frozenset(_wordlist("""
please pls thanks thank thx ty hi hello hey dear greetings regards kind kindly appreciate appreciated
grateful hope hoping hoped wondering wonder wondered assistance assist help helping request requesting like
would could advance reaching reach reached sincerely best cheers apologies apologize sorry doing day
morning afternoon evening team question questions inquire inquiring enquire concerning regarding writing
just wanted want wish let know good excuse
"""))
_FUNCTION = frozenset(ENGLISH_STOP_WORDS) | frozenset(_wordlist(
    "i'm i've i'd i'll you're you've you'd it's that's there's can't don't won't isn't wasn't couldn't "
    "wouldn't doesn't didn't let's what's im ive id dont cant <name> <id> <num> <date> <time> <money> "
    "<email> <url> <product>"))
STYLE_WORDS = _POLITE | _FUNCTION


@dataclass
class Leak:
    """One label-predictive phrase: where it occurs and how strongly it points at one label."""

    phrase: str
    rows: np.ndarray
    label: str
    label_count: int
    position: str  # "anywhere" or "opening"
    per_label: dict[str, int] = field(default_factory=dict)
    kind: str = "topical"

    @property
    def support(self) -> int:
        return len(self.rows)

    @property
    def purity(self) -> float:
        return self.label_count / max(self.support, 1)


LONG_FORMULA = 5
"""A formulaic phrase of this many words or more, with no topic word of its label, is style even when
some of its words are not function/politeness words ("good morning i hope this message finds you well")."""


def leak_kind(phrase: str, label: str) -> str:
    """"style" when the phrase holds a politeness or formula word ("please", "hope", "would like",
    "hello"), no topic word of the label, and is mostly function/politeness words or a long formula
    ("good morning i hope this message finds you well"); else "topical"."""
    words = phrase.split()
    if not words or is_topical(phrase, label) or not is_formulaic(phrase):
        return "topical"
    only_style_words = all(w in STYLE_WORDS for w in words)
    return "style" if only_style_words or len(words) >= LONG_FORMULA else "topical"


def _label_matrix(codes: np.ndarray, n_labels: int) -> sparse.csr_matrix:
    n = len(codes)
    return sparse.csr_matrix((np.ones(n, dtype=np.int32), (np.arange(n), codes)), shape=(n, n_labels))


def opening_matrix(docs: list[str], n_words: int) -> PhraseMatrix:
    """Binary doc x opening (first `n_words` words) matrix."""
    keys = pd.Series(opening_keys([d.split() for d in docs], n_words), dtype=object)
    present = keys.notna().to_numpy()
    key_codes, uniques = pd.factorize(keys[present])
    x = sparse.csc_matrix((np.ones(len(key_codes), dtype=np.int32), (np.flatnonzero(present), key_codes)),
                          shape=(len(docs), len(uniques)))
    return PhraseMatrix(x, phrases=[str(u) for u in uniques])


@dataclass
class LeakStats:
    """How many phrases passed the support/purity/lift filter, before merging and capping."""

    n_predictive: int = 0
    n_style: int = 0
    style_per_label: Counter[str] = field(default_factory=Counter)


def _candidates(pm: PhraseMatrix, position: str, codes: np.ndarray, names: np.ndarray, base: np.ndarray,
                cfg: CheckConfig, stats: LeakStats) -> list[Leak]:
    """Predictive phrases (support, purity, lift filters, vectorised), best MAX_CANDIDATES as Leaks."""
    if pm.x.shape[1] == 0:
        return []
    counts = (pm.x.T @ _label_matrix(codes, len(names))).tocsr()
    support = np.diff(pm.x.indptr)
    top = np.asarray(counts.max(axis=1).todense()).ravel()
    arg = np.asarray(counts.argmax(axis=1)).ravel()
    purity = top / np.maximum(support, 1)
    lift = purity / base[arg]
    idx = np.flatnonzero((support >= cfg.leak_min_support) & (purity >= cfg.leak_min_purity) & (lift >= MIN_LIFT))
    if idx.size == 0:
        return []
    phrases = [pm.phrase(int(j)) for j in idx]
    labels = [str(names[arg[j]]) for j in idx]
    kinds = [leak_kind(p, lab) for p, lab in zip(phrases, labels, strict=True)]
    stats.n_predictive += idx.size
    for kind, lab in zip(kinds, labels, strict=True):
        if kind == "style":
            stats.n_style += 1
            stats.style_per_label[lab] += 1
    n_words = np.array([p.count(" ") + 1 for p in phrases])
    style = np.array([k == "style" for k in kinds])
    score = support[idx] * purity[idx] * np.where(style, 3.0, 1.0) * (1 + 0.25 * (n_words - 1))
    best = np.argsort(-score, kind="stable")[:MAX_CANDIDATES]
    sub = counts[idx[best]]
    leaks = []
    for r, b in enumerate(best):
        j = idx[b]
        lo, hi = sub.indptr[r], sub.indptr[r + 1]
        per_label = {str(names[k]): int(v) for k, v in zip(sub.indices[lo:hi], sub.data[lo:hi], strict=True)}
        rows = pm.x.indices[pm.x.indptr[j]:pm.x.indptr[j + 1]]
        leaks.append(Leak(phrases[b], rows, labels[b], per_label[labels[b]], position, per_label, kinds[b]))
    return leaks


def _contains(longer: str, shorter: str) -> bool:
    return f" {shorter} " in f" {longer} "


def _stitch(leaks: list[Leak], docs: list[str], codes: np.ndarray, names: np.ndarray) -> list[Leak]:
    """Join chains of overlapping 3-word leaks of one label ("would like to" + "like to request")
    into the longer phrase, verified on the rows of its first part."""
    trigrams = [lk for lk in leaks if lk.position == "anywhere" and lk.phrase.count(" ") == 2]

    def similar(a: Leak, b: Leak) -> bool:
        return a.label == b.label and min(a.support, b.support) >= SUBSUME_KEEP * max(a.support, b.support)

    by_head: dict[tuple[str, ...], list[Leak]] = {}
    by_tail: dict[tuple[str, ...], list[Leak]] = {}
    for leak in trigrams:
        key = tuple(leak.phrase.split())
        by_head.setdefault(key[:2], []).append(leak)
        by_tail.setdefault(key[1:], []).append(leak)
    stitched = []
    for leak in trigrams:
        words = leak.phrase.split()
        if any(similar(p, leak) for p in by_tail.get(tuple(words[:2]), [])):
            continue  # not the start of a chain
        grown = list(words)
        while len(grown) < MAX_STITCH_WORDS:
            nxt = [b for b in by_head.get(tuple(grown[-2:]), []) if similar(b, leak)]
            if not nxt:
                break
            grown.append(nxt[0].phrase.split()[-1])
        if len(grown) == 3:
            continue
        phrase = " ".join(grown)
        rows = np.array([i for i in leak.rows if _contains(docs[i], phrase)], dtype=np.int64)
        if len(rows) < SUBSUME_KEEP * leak.support:
            continue
        per_label = {str(names[k]): int(v) for k, v in Counter(codes[rows].tolist()).most_common()}
        stitched.append(Leak(phrase, rows, leak.label, per_label.get(leak.label, 0), "anywhere", per_label))
    return stitched


def _merge_same_rows(leaks: list[Leak]) -> list[Leak]:
    """One finding per leak: of overlapping phrases of one label that cover (nearly) the same rows,
    keep the longest."""
    kept: dict[str, list[tuple[Leak, set[int]]]] = {}
    out = []
    for leak in sorted(leaks, key=lambda lk: (-lk.phrase.count(" "), lk.position != "opening", lk.phrase)):
        rows = set(leak.rows.tolist())
        words = leak.phrase.split()
        grams = {" ".join(words[i:i + 2]) for i in range(max(len(words) - 1, 1))}
        same = kept.setdefault(leak.label, [])
        if any(len(rows & other) >= SUBSUME_KEEP * len(rows | other)
               and any(_contains(k.phrase, g) for g in grams) for k, other in same):
            continue
        same.append((leak, rows))
        out.append(leak)
    return out


def _drop_subsumed(leaks: list[Leak]) -> list[Leak]:
    """Keep the longest form of a phrase: drop a leak contained in a longer (or equal) one of the same
    label that keeps most of its rows; an absorbed opening marks the kept phrase as an opening."""
    kept: dict[str, list[Leak]] = {}
    out = []
    order = sorted(leaks, key=lambda lk: (-lk.phrase.count(" "), lk.position != "anywhere", -lk.support, lk.phrase))
    for leak in order:
        same = kept.setdefault(leak.label, [])
        host = next((k for k in same if _contains(k.phrase, leak.phrase)
                     and k.support >= SUBSUME_KEEP * leak.support), None)
        if host is not None:
            if (leak.position == "opening" and host.phrase.startswith(leak.phrase)
                    and leak.support >= SUBSUME_KEEP * host.support):
                host.position = "opening"
            continue
        same.append(leak)
        out.append(leak)
    return out


def _score(leak: Leak) -> float:
    words = leak.phrase.count(" ") + 1
    return leak.support * leak.purity * (3.0 if leak.kind == "style" else 1.0) * (1 + 0.25 * (words - 1))


def _severity(leak: Leak, coverage: float) -> Severity:
    if leak.kind == "style":
        if coverage >= 0.1 and leak.support >= HIGH_STYLE_SUPPORT:
            return Severity.HIGH
        return Severity.MEDIUM if leak.support >= 10 or coverage >= 0.05 else Severity.LOW
    if leak.phrase.count(" ") >= 1 and coverage >= 0.3:
        return Severity.LOW
    return Severity.INFO


def _label_leak(ctx: AuditContext) -> list[Finding]:
    """Phrases with support >= leak_min_support whose rows are >= leak_min_purity one label."""
    cfg = ctx.config.checks
    text = text_fields(ctx.train)[0]
    if text.labels is None:
        return []
    keep = np.flatnonzero(np.array([lab is not None for lab in text.labels], dtype=bool))
    if keep.size == 0:
        return []
    # unmasked text: a product or place name can be the topic ("visa or mastercard")
    docs = normalize_many([text.raw[i] for i in keep])
    codes, uniques = pd.factorize(pd.Series(text.labels[keep], dtype=object))
    names = np.asarray(uniques, dtype=object)
    if len(names) < 2:
        return []
    label_rows = np.bincount(codes, minlength=len(names))
    base = label_rows / len(codes)
    stats = LeakStats()
    leaks = (_candidates(ngram_matrix(docs, 3, cfg.leak_min_support), "anywhere", codes, names, base, cfg, stats)
             + _candidates(opening_matrix(docs, cfg.opening_words), "opening", codes, names, base, cfg, stats))
    leaks = _merge_same_rows(_drop_subsumed(leaks + _stitch(leaks, docs, codes, names)))
    size_of = {str(n): int(c) for n, c in zip(names, label_rows, strict=True)}
    base_of = {str(n): float(b) for n, b in zip(names, base, strict=True)}
    for leak in leaks:
        leak.kind = leak_kind(leak.phrase, leak.label)
    leaks.sort(key=lambda lk: (lk.kind == "style", _score(lk)), reverse=True)
    findings = []
    for leak in leaks[:MAX_LEAK_FINDINGS]:
        coverage = leak.label_count / size_of[leak.label]
        lift = leak.purity / base_of[leak.label]
        where = "open" if leak.position == "opening" else "contain"
        message = (f'{leak.support} rows {where} "{leak.phrase}" and {leak.purity:.0%} of them are '
                   f"'{leak.label}' ({coverage:.0%} of that label; base rate {base_of[leak.label]:.1%}, "
                   f"lift {lift:.1f}x): {leak.kind} leak")
        findings.append(Finding(
            check="label_leak", severity=_severity(leak, coverage), message=message,
            rows=[text.ids[keep[i]] for i in leak.rows[:1000]], labels=[leak.label],
            evidence={
                "phrase": leak.phrase,
                "kind": leak.kind,
                "position": leak.position,
                "n_words": leak.phrase.count(" ") + 1,
                "support": leak.support,
                "purity": round(leak.purity, 4),
                "top_label": leak.label,
                "top_label_count": leak.label_count,
                "label_rows": size_of[leak.label],
                "label_coverage": round(coverage, 4),
                "base_rate": round(base_of[leak.label], 4),
                "lift": round(lift, 2),
                "per_label": dict(sorted(leak.per_label.items(), key=lambda kv: -kv[1])[:5]),
                "examples": [{"id": text.ids[keep[i]], "text": text.raw[keep[i]][:300]} for i in leak.rows[:3]],
            },
        ))
    style = [lk for lk in leaks if lk.kind == "style"]
    by_label = Counter(lk.label for lk in style)
    findings.append(Finding(
        check="label_leak", severity=Severity.INFO,
        message=(f"{stats.n_predictive} words/phrases/openings predict one label with >= "
                 f"{cfg.leak_min_purity:.0%} purity (support >= {cfg.leak_min_support}, lift >= {MIN_LIFT:g}), "
                 f"{stats.n_style} of them style formulae; after merging overlaps: {len(style)} style leaks, "
                 f"{len(leaks) - len(style)} topical; showing the top {min(len(leaks), MAX_LEAK_FINDINGS)}"),
        labels=[lab for lab, _ in by_label.most_common(20)],
        evidence={
            "summary": True,
            "n_predictive_phrases": stats.n_predictive,
            "n_style_phrases": stats.n_style,
            "style_phrases_per_label": dict(stats.style_per_label.most_common(50)),
            "n_leaks": len(leaks),
            "n_style": len(style),
            "n_topical": len(leaks) - len(style),
            "shown": min(len(leaks), MAX_LEAK_FINDINGS),
            "style_leaks_per_label": dict(by_label.most_common(50)),
            "top_style_phrases": [{"phrase": lk.phrase, "label": lk.label, "support": lk.support,
                                   "purity": round(lk.purity, 4)} for lk in style[:20]],
            "min_support": cfg.leak_min_support,
            "min_purity": cfg.leak_min_purity,
            "min_lift": MIN_LIFT,
        },
    ))
    return findings


class PhraseExample(Record):
    id: RowId
    text: str


class StylePhrase(Record):
    phrase: str
    label: str
    support: int
    purity: float


class LeakEvidence(Evidence):
    phrase: str
    kind: str
    position: str
    n_words: int
    support: int
    purity: float
    top_label: str
    top_label_count: int
    label_rows: int
    label_coverage: float
    base_rate: float
    lift: float
    per_label: dict[str, int]
    examples: list[PhraseExample]


class LeakSummary(Evidence):
    n_predictive_phrases: int
    n_style_phrases: int
    style_phrases_per_label: dict[str, int]
    n_leaks: int
    n_style: int
    n_topical: int
    shown: int
    style_leaks_per_label: dict[str, int]
    top_style_phrases: list[StylePhrase]
    min_support: int
    min_purity: float
    min_lift: float


class LabelLeak(Check):
    """Phrases with support >= leak_min_support whose rows are >= leak_min_purity one label."""

    name = "label_leak"
    description = "Words, phrases and openings that predict the label far above chance (style vs topical)"
    needs = ("labels", "classification", "two_labels")
    recommendation = ("Remove or spread the phrases that appear under one label only; the model will learn the "
                      "phrase instead of the intent.")
    Evidence = LeakEvidence | LeakSummary

    def run(self, ctx: AuditContext) -> list[Finding]:
        return _label_leak(ctx)

    def subject(self, f: Finding) -> str | None:
        ev = self.evidence(f, LeakEvidence)
        return f"{ev.position}: {ev.phrase}" if ev is not None else super().subject(f)
