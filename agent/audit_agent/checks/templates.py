"""Template frames: many rows that are one sentence frame with only the slots (names, ids, dates,
numbers, ...) changed, e.g. "Hello, my name is {NAME} and my order {ID} arrived damaged."."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import HashingVectorizer

from audit_agent.checks.base import Check
from audit_agent.checks.phrasing import MIN_LABEL_ROWS, LabelShare, RowExample, TextField, text_fields
from audit_agent.context import AuditContext
from audit_agent.features.slots import as_frame, has_slot, normalize_many, slot_values
from audit_agent.findings import Evidence, Finding, Severity

MAX_FINDINGS_PER_FIELD = 30
NEAR_MIN_TOKENS = 6  # shorter skeletons are only grouped when identical
_PERMS, _BANDS = 20, 5  # 5 bands x 4 rows: skeletons with Jaccard >= ~0.67 (word 1-2 grams) share a bucket
_PRIME = (1 << 31) - 1
NEAR_JACCARD = 0.7


def minhash_signatures(docs: list[str], seed: int = 0) -> np.ndarray:
    """MinHash signatures (n_docs x 20) of each doc's word 1-2 grams, vectorised with numpy."""
    vec = HashingVectorizer(token_pattern=r"\S+", ngram_range=(1, 2), n_features=1 << 24, lowercase=False,
                            alternate_sign=False, norm=None, binary=True)
    mat = vec.transform(docs).tocsr()
    mat.sort_indices()
    rng = np.random.default_rng(seed)
    a = rng.integers(1, _PRIME, size=_PERMS, dtype=np.int64)
    b = rng.integers(0, _PRIME, size=_PERMS, dtype=np.int64)
    idx = mat.indices.astype(np.int64)
    starts = mat.indptr[:-1]
    nonempty = np.diff(mat.indptr) > 0
    sig = np.full((len(docs), _PERMS), _PRIME, dtype=np.int64)
    if idx.size == 0:
        return sig
    for p in range(_PERMS):
        hashed = (a[p] * idx + b[p]) % _PRIME
        sig[nonempty, p] = np.minimum.reduceat(hashed, starts[nonempty])
    return sig


def near_leaders(skeletons: list[str], weights: np.ndarray, seed: int = 0) -> np.ndarray:
    """For each distinct skeleton, the index of the skeleton whose frame it fills: itself, or the
    heaviest skeleton (most rows) sharing an LSH bucket with it at estimated Jaccard >= 0.7.

    One hop to a bucket leader, never transitive chains, so unrelated rows do not snowball together.
    """
    n = len(skeletons)
    leader_of = np.arange(n)
    long_idx = np.array([i for i, s in enumerate(skeletons) if s.count(" ") + 1 >= NEAR_MIN_TOKENS], dtype=np.int64)
    if long_idx.size < 2:
        return leader_of
    sig = minhash_signatures([skeletons[i] for i in long_idx], seed)
    weight = weights[long_idx]
    m = long_idx.size
    best = np.arange(m)
    rows_per_band = _PERMS // _BANDS
    mult = np.random.default_rng(seed + 1).integers(1, _PRIME, size=rows_per_band, dtype=np.int64)
    for band in range(_BANDS):
        keys = sig[:, band * rows_per_band:(band + 1) * rows_per_band] @ mult
        _, bucket = np.unique(keys, return_inverse=True)
        order = np.lexsort((np.arange(m), -weight, bucket))
        heads = order[np.r_[0, np.flatnonzero(np.diff(bucket[order])) + 1]]
        leader = heads[bucket]
        similar = (sig == sig[leader]).mean(axis=1) >= NEAR_JACCARD
        heavier = (weight[leader] > weight[best]) | ((weight[leader] == weight[best]) & (leader < best))
        take = similar & heavier
        best[take] = leader[take]
    leader_of[long_idx] = long_idx[best]
    return leader_of


def _severity(share: float, label_share: float) -> Severity:
    if share >= 0.1 or label_share >= 0.3:
        return Severity.HIGH
    if share >= 0.02 or label_share >= 0.1:
        return Severity.MEDIUM
    return Severity.LOW


def _slot_examples(texts: list[str]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for text in texts:
        for slot, found in slot_values(text).items():
            seen = values.setdefault(slot, [])
            seen.extend(v for v in found if v not in seen and len(seen) < 5)
    return values


def _frame_findings(field: TextField, min_rows: int, seed: int) -> list[Finding]:
    skeletons = field.view.normalized
    n = len(skeletons)
    codes, uniques = pd.factorize(pd.Series(skeletons, dtype=object))
    # components over distinct skeletons (cheap when a template repeats), then mapped back to rows
    comp = near_leaders([str(u) for u in uniques], np.bincount(codes), seed)[codes]
    sizes = np.bincount(comp)
    big = np.flatnonzero(sizes >= min_rows)
    if big.size == 0:
        return []
    label_sizes = Counter(field.labels.tolist()) if field.labels is not None else Counter()
    order = np.argsort(comp, kind="stable")
    starts = np.searchsorted(comp[order], big)
    candidates = []
    for c, start in zip(big, starts, strict=True):
        rows = order[start:start + sizes[c]]
        skel_counts = Counter(codes[rows].tolist())
        top_code = skel_counts.most_common(1)[0][0]
        if not has_slot(str(uniques[top_code])):
            continue
        candidates.append((rows, skel_counts, top_code))
    findings = []
    for rows, skel_counts, top_code in sorted(candidates, key=lambda c: -len(c[0]))[: MAX_FINDINGS_PER_FIELD * 2]:
        filled = normalize_many([field.raw[i] for i in rows])
        distinct_texts = len(set(filled))
        if len(set(zip(codes[rows].tolist(), filled, strict=True))) <= len(skel_counts):
            continue  # no skeleton is filled two ways: duplicates or near-duplicates, not a frame
        rep = next(i for i in rows if codes[i] == top_code)
        frame_text = as_frame(field.view.masked[rep])
        share = len(rows) / n
        per_label: dict[str, dict[str, float | int]] = {}
        top_label, top_label_share = None, 0.0
        if field.labels is not None:
            for lab, cnt in Counter(field.labels[rows].tolist()).most_common(20):
                if lab is None:
                    continue
                lab_share = cnt / label_sizes[lab]
                per_label[str(lab)] = {"count": cnt, "share": round(lab_share, 4), "label_rows": label_sizes[lab]}
                if label_sizes[lab] >= MIN_LABEL_ROWS and lab_share > top_label_share:
                    top_label, top_label_share = str(lab), lab_share
        sample = [field.raw[i] for i in rows[:20]]
        variants = [as_frame(field.view.masked[next(i for i in rows if codes[i] == code)])
                    for code, _ in skel_counts.most_common(4)[1:]]
        message = f'{len(rows)} rows ({share:.1%}) fill one template frame: "{frame_text[:200]}"'
        if field.name == "target":
            message += " (target texts)"
        if per_label:
            listed = ", ".join(f"{k} ({v['count']})" for k, v in list(per_label.items())[:5])
            message += f"; labels: {listed}"
        if len(skel_counts) > 1:
            message += f"; {len(skel_counts)} near-identical variants"
        findings.append(Finding(
            check="template_frame", severity=_severity(share, top_label_share), message=message,
            rows=[field.ids[i] for i in rows[:1000]], labels=list(per_label)[:20],
            evidence={
                "field": field.name,
                "frame": frame_text,
                "count": len(rows),
                "share": round(share, 4),
                "n_rows": n,
                "distinct_texts": distinct_texts,
                "n_variants": len(skel_counts),
                "variant_frames": variants,
                "per_label": per_label,
                "top_label": top_label,
                "top_label_share": round(top_label_share, 4),
                "slot_values": _slot_examples(sample),
                "examples": [{"id": field.ids[i], "text": field.raw[i][:300]} for i in rows[:3]],
            },
        ))
        if len(findings) >= MAX_FINDINGS_PER_FIELD:
            break
    return findings


def _template_frame(ctx: AuditContext) -> list[Finding]:
    """Rows whose slot-masked skeletons are identical or near-identical (MinHash LSH over skeletons)."""
    min_rows = ctx.config.checks.template_min_rows
    findings = []
    for field in text_fields(ctx.train):
        findings += _frame_findings(field, min_rows, ctx.config.seed)
    return findings


class FrameEvidence(Evidence):
    field: str
    frame: str
    count: int
    share: float
    n_rows: int
    distinct_texts: int
    n_variants: int
    variant_frames: list[str]
    per_label: dict[str, LabelShare]
    top_label: str | None
    top_label_share: float
    slot_values: dict[str, list[str]]
    examples: list[RowExample]


class TemplateFrame(Check):
    """Rows whose slot-masked skeletons are identical or near-identical (MinHash LSH over skeletons)."""

    name = "template_frame"
    description = "Many rows share one sentence frame where only names/ids/numbers change"
    recommendation = ("Rewrite rows that only swap names, ids or dates inside one frame; they teach the frame, "
                      "not the intent.")
    Evidence = FrameEvidence

    def run(self, ctx: AuditContext) -> list[Finding]:
        return _template_frame(ctx)

    def subject(self, f: Finding) -> str | None:
        ev = self.evidence(f, FrameEvidence)
        return f"{ev.field}: {ev.frame}" if ev is not None else None

    def frames(self, f: Finding) -> list[str]:
        ev = self.evidence(f, FrameEvidence)
        return [ev.frame] if ev is not None and ev.frame.strip() else []
