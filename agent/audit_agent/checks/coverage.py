"""Messy-input coverage: per label, how many rows are short, misspelled, unpunctuated, lowercase,
multi-intent, emotional or indirect, and which of these buckets real users need but train lacks."""

from __future__ import annotations

import re
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from audit_agent.checks.base import Check
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.findings import Evidence, Finding, Severity

# bucket name -> style column (no_label_keyword is computed here from the label names)
BUCKETS: dict[str, str] = {
    "very_short": "is_short",
    "typos": "has_typo",
    "no_end_punctuation": "no_end_punct",
    "all_lowercase": "all_lowercase",
    "multiple_intents": "multi_intent",
    "emotional": "emotional",
    "indirect_request": "indirect_request",
    "no_label_keyword": "",
}
BUCKET_DESCRIPTIONS = {
    "very_short": "1-4 words",
    "typos": "at least one word not in the English word list",
    "no_end_punctuation": "no . ? ! at the end",
    "all_lowercase": "no capital letter",
    "multiple_intents": "several questions or requests joined by also/plus/&",
    "emotional": "exclamation marks, ALL CAPS or frustration words",
    "indirect_request": "states the problem without a question or request",
    "no_label_keyword": "never mentions a word of its label name",
}
BUCKET_TITLES = {
    "very_short": "very short inputs", "typos": "inputs with typos", "no_end_punctuation": "unpunctuated inputs",
    "all_lowercase": "all-lowercase inputs", "multiple_intents": "multi-intent inputs",
    "emotional": "emotional inputs", "indirect_request": "indirect requests",
    "no_label_keyword": "inputs that never name their label",
}
RARE_SHARE = 0.05
REAL_COMMON_SHARE = 0.10
ABSENT_SHARE = 0.01
MAX_LABELS_IN_TABLE = 500
MAX_EXAMPLES = 20
_STOP = frozenset({"the", "and", "for", "with", "not", "from", "into", "via", "own", "you", "your", "are", "was"})


def _stems(label: str) -> list[str]:
    """Word stems of a label name: "card_arrival" -> ["card", "arri"] (first 4 letters of each word)."""
    words = [w for w in re.findall(r"[a-z]+", label.lower()) if len(w) >= 3 and w not in _STOP]
    return sorted({w[:4] for w in words})


def label_keyword_mask(frame: pd.DataFrame) -> np.ndarray:
    """Per row: True when the text mentions no word of its own label name (NaN-free; rows whose label
    has no usable word count as mentioning it)."""
    out = np.zeros(len(frame), dtype=bool)
    labels = frame["label"].astype(str).to_numpy()
    texts = pa.array(frame["text"].astype(str).str.lower().to_numpy(dtype=object), pa.string())
    for label, positions in pd.Series(np.arange(len(frame))).groupby(labels).groups.items():
        stems = _stems(str(label))
        if not stems:
            continue
        idx = np.asarray(positions, dtype=int)
        pattern = r"\b(?:" + "|".join(re.escape(s) for s in stems) + ")"
        hit = pc.match_substring_regex(pc.take(texts, pa.array(idx)), pattern)
        out[idx] = ~hit.to_numpy(zero_copy_only=False).astype(bool)
    return out


def bucket_frame(ctx: AuditContext, split: str) -> pd.DataFrame:
    """One boolean column per bucket for a split's rows (no_label_keyword only with class labels)."""
    ds: Dataset = getattr(ctx, split)
    style = ctx.features.style(split)
    out = pd.DataFrame({name: style[col].to_numpy() for name, col in BUCKETS.items() if col})
    if ds.kind == "classification" and ds.has_labels:
        out["no_label_keyword"] = label_keyword_mask(ds.frame)
    return out


def _group_key(ds: Dataset) -> pd.Series:
    if ds.kind == "classification" and ds.has_labels:
        return ds.frame["label"].astype(str).reset_index(drop=True)
    if "task" in ds.frame.columns and ds.frame["task"].notna().any():
        return ds.frame["task"].fillna("(none)").astype(str).reset_index(drop=True)
    return pd.Series(["(all)"] * len(ds), dtype=object)


def _bucket_finding(name: str, train_share: float, real_share: float | None, per_label: pd.Series,
                    examples: list[str], has_real: bool) -> Finding | None:
    """A finding for one bucket that is missing or rare in train (None when it is covered)."""
    empty = sorted(per_label.index[per_label == 0].astype(str))
    rare = sorted(per_label.index[(per_label > 0) & (per_label < RARE_SHARE)].astype(str))
    n_labels = max(len(per_label), 1)
    severity: Severity | None = None
    if has_real and real_share is not None:
        if real_share >= REAL_COMMON_SHARE and train_share < ABSENT_SHARE:
            severity = Severity.HIGH
        elif real_share >= RARE_SHARE and train_share < real_share / 2:
            severity = Severity.MEDIUM
    if severity is None:
        if train_share == 0:
            severity = Severity.MEDIUM if not has_real else Severity.LOW
        elif train_share < RARE_SHARE or len(empty) / n_labels >= 0.25:
            severity = Severity.LOW
    if severity is None:
        return None
    if train_share == 0:
        state = "absent from"
    elif train_share < RARE_SHARE:
        state = "rare in"
    elif real_share is not None and train_share < real_share / 2:
        state = "under-represented in"
    else:
        state = "missing from many labels of"
    msg = f"{BUCKET_TITLES[name]} ({BUCKET_DESCRIPTIONS[name]}) are {state} train: {train_share:.1%} of rows"
    if real_share is not None:
        msg += f" vs {real_share:.1%} of the real batch"
    msg += f"; empty in {len(empty)} of {len(per_label)} labels, under {RARE_SHARE:.0%} in {len(rare)} more"
    return Finding(
        check="coverage_gap", severity=severity, labels=(empty + rare)[:MAX_LABELS_IN_TABLE],
        message=msg,
        evidence={"kind": "bucket", "bucket": name, "description": BUCKET_DESCRIPTIONS[name],
                  "train_share": round(train_share, 5),
                  "real_share": None if real_share is None else round(real_share, 5),
                  "labels_empty": empty[:MAX_LABELS_IN_TABLE], "labels_rare": rare[:MAX_LABELS_IN_TABLE],
                  "rare_threshold": RARE_SHARE, "real_examples": examples},
    )


def _coverage_gap(ctx: AuditContext) -> list[Finding]:
    """One finding per messy bucket that is missing or rare in train, plus the label x bucket table."""
    train = ctx.train
    if len(train) == 0:
        return []
    buckets = bucket_frame(ctx, "train")
    groups = _group_key(train)
    table = buckets.astype(float).groupby(groups.to_numpy()).mean()
    sizes = groups.value_counts()
    overall = buckets.mean()
    real_shares: pd.Series | None = None
    real_buckets: pd.DataFrame | None = None
    if ctx.real is not None and len(ctx.real):
        real_buckets = bucket_frame(ctx, "real")
        real_shares = real_buckets.mean()
    findings = []
    for name in buckets.columns:
        real_share = float(real_shares[name]) if real_shares is not None and name in real_shares else None
        examples: list[str] = []
        if real_buckets is not None and ctx.real is not None and name in real_buckets:
            hits = np.flatnonzero(real_buckets[name].to_numpy())[:5]
            examples = [str(t)[:200] for t in ctx.real.frame["text"].iloc[hits]]
        f = _bucket_finding(name, float(overall[name]), real_share, table[name], examples, real_shares is not None)
        if f is not None:
            findings.append(f)
    top_labels = sizes.index[:MAX_LABELS_IN_TABLE]
    shown = table.loc[table.index.isin(top_labels)]
    gaps = [f.evidence.bucket for f in findings if isinstance(f.evidence, BucketGap)]
    findings.append(Finding(
        check="coverage_gap", severity=Severity.INFO,
        message=(f"messy-input coverage of {len(train)} rows over {len(table)} "
                 f"{'labels' if train.kind == 'classification' else 'groups'}: "
                 + ", ".join(f"{b} {overall[b]:.1%}" for b in buckets.columns)
                 + (f"; gaps: {', '.join(gaps)}" if gaps else "; no bucket missing")),
        evidence={
            "kind": "table", "buckets": list(buckets.columns), "descriptions": BUCKET_DESCRIPTIONS,
            "table": {str(lab): {b: round(float(v), 4) for b, v in row.items()} for lab, row in shown.iterrows()},
            "label_rows": {str(k): int(v) for k, v in sizes.head(MAX_LABELS_IN_TABLE).items()},
            "table_truncated": len(table) > len(shown),
            "train_overall": {b: round(float(v), 5) for b, v in overall.items()},
            "real_overall": None if real_shares is None else {b: round(float(v), 5) for b, v in real_shares.items()},
            "rare_threshold": RARE_SHARE,
        },
    ))
    return findings


class BucketGap(Evidence):
    """One messy-input bucket that is missing or rare in train."""

    kind: Literal["bucket"]
    bucket: str
    description: str
    train_share: float
    real_share: float | None
    labels_empty: list[str]
    labels_rare: list[str]
    rare_threshold: float
    real_examples: list[str]


class CoverageTable(Evidence):
    """The label x bucket share table."""

    kind: Literal["table"]
    buckets: list[str]
    descriptions: dict[str, str]
    table: dict[str, dict[str, float]]
    label_rows: dict[str, int]
    table_truncated: bool
    train_overall: dict[str, float]
    real_overall: dict[str, float] | None
    rare_threshold: float


class CoverageGap(Check):
    """One finding per messy bucket that is missing or rare in train, plus the label x bucket table."""

    name = "coverage_gap"
    description = "Per label, the share of short, misspelled, unpunctuated, emotional, indirect ... rows"
    recommendation = ("Add short, messy, misspelled and mixed-intent rows like the ones real users write; the "
                      "training set does not cover them.")
    Evidence = BucketGap | CoverageTable

    def run(self, ctx: AuditContext) -> list[Finding]:
        return _coverage_gap(ctx)

    def subject(self, f: Finding) -> str | None:
        ev = self.evidence(f, BucketGap)
        return ev.bucket if ev is not None else "table" if self.evidence(f, CoverageTable) else None
