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
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

from audit_agent.checks.phrasing import is_topical, opening_keys, text_fields
from audit_agent.checks.registry import check
from audit_agent.config import CheckConfig
from audit_agent.dataset import AuditContext
from audit_agent.features.slots import normalize_many
from audit_agent.findings import Finding, Severity

MAX_LEAK_FINDINGS = 30
MIN_LIFT = 2.0
SUBSUME_KEEP = 0.8  # a longer phrase replaces a shorter one it contains when it keeps this share of its rows
_TOKEN = r"<\w+>|\w[\w']*"


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


def leak_kind(phrase: str, label: str) -> str:
    """"style" when the phrase is made only of function/politeness words, with at least one politeness
    or formula word ("please", "hope", "would like", "hello") and no topic word of the label."""
    words = phrase.split()
    if is_topical(phrase, label):
        return "topical"
    formulaic = all(w in STYLE_WORDS for w in words) and any(w in _POLITE for w in words)
    return "style" if formulaic else "topical"


def _label_matrix(codes: np.ndarray, n_labels: int) -> sparse.csr_matrix:
    n = len(codes)
    return sparse.csr_matrix((np.ones(n, dtype=np.int32), (np.arange(n), codes)), shape=(n, n_labels))


def _predictive(counts: sparse.csr_matrix, support: np.ndarray, base: np.ndarray, cfg: CheckConfig) -> np.ndarray:
    """Feature indices with support >= min, purity >= min and lift >= MIN_LIFT (vectorised)."""
    top = np.asarray(counts.max(axis=1).todense()).ravel()
    arg = np.asarray(counts.argmax(axis=1)).ravel()
    purity = top / np.maximum(support, 1)
    lift = purity / base[arg]
    keep = (support >= cfg.leak_min_support) & (purity >= cfg.leak_min_purity) & (lift >= MIN_LIFT)
    return np.flatnonzero(keep)


def _ngram_leaks(docs: list[str], codes: np.ndarray, names: np.ndarray, base: np.ndarray,
                 cfg: CheckConfig) -> list[Leak]:
    vec = CountVectorizer(binary=True, ngram_range=(1, 3), min_df=cfg.leak_min_support, token_pattern=_TOKEN,
                          lowercase=False, dtype=np.int32)
    try:
        x = vec.fit_transform(docs).tocsc()
    except ValueError:  # empty vocabulary: every phrase is rarer than min_support
        return []
    counts = (x.T @ _label_matrix(codes, len(names))).tocsr()
    support = np.asarray(x.sum(axis=0)).ravel()
    vocab = vec.get_feature_names_out()
    leaks = []
    for j in _predictive(counts, support, base, cfg):
        rows = x.indices[x.indptr[j]:x.indptr[j + 1]]
        row_counts = counts.getrow(j)
        per_label = {str(names[k]): int(v) for k, v in zip(row_counts.indices, row_counts.data, strict=True)}
        label = max(per_label, key=lambda k: per_label[k])
        leaks.append(Leak(str(vocab[j]), rows, label, per_label[label], "anywhere", per_label))
    return leaks


def _opening_leaks(docs: list[str], codes: np.ndarray, names: np.ndarray, base: np.ndarray,
                   cfg: CheckConfig) -> list[Leak]:
    keys = pd.Series(opening_keys([d.split() for d in docs], cfg.opening_words), dtype=object)
    present = keys.notna().to_numpy()
    if not present.any():
        return []
    key_codes, uniques = pd.factorize(keys[present])
    rows_all = np.flatnonzero(present)
    x = sparse.csc_matrix((np.ones(len(key_codes), dtype=np.int32), (rows_all, key_codes)),
                          shape=(len(docs), len(uniques)))
    counts = (x.T @ _label_matrix(codes, len(names))).tocsr()
    support = np.asarray(x.sum(axis=0)).ravel()
    leaks = []
    for j in _predictive(counts, support, base, cfg):
        rows = x.indices[x.indptr[j]:x.indptr[j + 1]]
        row_counts = counts.getrow(j)
        per_label = {str(names[k]): int(v) for k, v in zip(row_counts.indices, row_counts.data, strict=True)}
        label = max(per_label, key=lambda k: per_label[k])
        leaks.append(Leak(str(uniques[j]), rows, label, per_label[label], "opening", per_label))
    return leaks


def _contains(longer: str, shorter: str) -> bool:
    return f" {shorter} " in f" {longer} "


def _stitch(leaks: list[Leak], docs: list[str], codes: np.ndarray, names: np.ndarray) -> list[Leak]:
    """Join overlapping 3-word leaks of one label ("would like to" + "like to request") into the
    longer phrase, verified on the rows of its first part."""
    by_head: dict[tuple[str, str], list[Leak]] = {}
    for leak in leaks:
        words = leak.phrase.split()
        if len(words) == 3 and leak.position == "anywhere":
            by_head.setdefault((words[0], words[1]), []).append(leak)
    stitched = []
    for leak in leaks:
        words = leak.phrase.split()
        if len(words) != 3 or leak.position != "anywhere":
            continue
        phrase, grown = leak.phrase, False
        for _ in range(8):
            tail = tuple(phrase.split()[-2:])
            nxt = [b for b in by_head.get((tail[0], tail[1]), []) if b.label == leak.label
                   and min(b.support, leak.support) >= SUBSUME_KEEP * max(b.support, leak.support)]
            if not nxt:
                break
            candidate = f"{phrase} {nxt[0].phrase.split()[-1]}"
            if candidate == phrase or candidate.count(" ") > 12:
                break
            phrase, grown = candidate, True
        if not grown:
            continue
        rows = np.array([i for i in leak.rows if _contains(docs[i], phrase)], dtype=np.int64)
        if len(rows) < SUBSUME_KEEP * leak.support:
            continue
        per_label = {str(names[k]): int(v) for k, v in Counter(codes[rows].tolist()).most_common()}
        stitched.append(Leak(phrase, rows, leak.label, per_label.get(leak.label, 0), "anywhere", per_label))
    return stitched


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
        if coverage >= 0.1 and leak.support >= 10:
            return Severity.HIGH
        return Severity.MEDIUM if leak.support >= 10 or coverage >= 0.05 else Severity.LOW
    if leak.phrase.count(" ") >= 1 and coverage >= 0.3:
        return Severity.LOW
    return Severity.INFO


@check("label_leak", needs=("labels", "classification"),
       description="Words, phrases and openings that predict the label far above chance (style vs topical)")
def label_leak(ctx: AuditContext) -> list[Finding]:
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
    leaks = _ngram_leaks(docs, codes, names, base, cfg) + _opening_leaks(docs, codes, names, base, cfg)
    leaks = _drop_subsumed(leaks + _stitch(leaks, docs, codes, names))
    size_of = {str(n): int(c) for n, c in zip(names, label_rows, strict=True)}
    base_of = {str(n): float(b) for n, b in zip(names, base, strict=True)}
    for leak in leaks:
        leak.kind = leak_kind(leak.phrase, leak.label)
    leaks.sort(key=_score, reverse=True)
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
        message=(f"{len(leaks)} phrases predict one label with >= {cfg.leak_min_purity:.0%} purity "
                 f"(support >= {cfg.leak_min_support}): {len(style)} style leaks, "
                 f"{len(leaks) - len(style)} topical; showing the top {min(len(leaks), MAX_LEAK_FINDINGS)}"),
        labels=[lab for lab, _ in by_label.most_common(20)],
        evidence={
            "summary": True,
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
