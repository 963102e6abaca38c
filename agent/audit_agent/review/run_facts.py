"""The facts about one run that comparing two audits needs: label counts, style statistics per split,
messy-input coverage, the pilot gap, and a fingerprint of every training row (id, text hash, label).

`run_facts(ctx, findings)` is what summary.json keeps under `facts`; `row_fingerprints(ds)` what rows.parquet
holds. `facts_from_findings(findings)` rebuilds what it can from findings.jsonl, for audit folders
written before summary.json had `facts`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from pydantic import BaseModel

from audit_agent.checks.balance import Frequencies
from audit_agent.checks.coverage import CoverageTable
from audit_agent.checks.pilot import PilotGapEvidence
from audit_agent.checks.real_gap import EvalCleanEvidence, RealGapEvidence
from audit_agent.dataset import Dataset
from audit_agent.findings import Finding

if TYPE_CHECKING:
    from audit_agent.context import AuditContext

FACTS_VERSION = 1
ROWS_FILE = "rows.parquet"
HASH_CHARS = 16


class PilotFacts(BaseModel):
    gap: float | None = None
    gap_against: str | None = None
    accuracy: dict[str, float] = {}
    macro_f1: dict[str, float] = {}


class RunFacts(BaseModel):
    """summary.json `facts`: every field may be missing in an older folder."""

    version: int = FACTS_VERSION
    source: Literal["summary", "findings"] = "summary"
    rows: int | None = None
    label_counts: dict[str, int] | None = None
    label_counts_complete: bool = True
    style: dict[str, dict[str, float]] = {}  # split -> statistic -> value
    coverage: dict[str, dict[str, float]] = {}  # "train" / "real" -> bucket -> share of rows
    pilot: PilotFacts | None = None


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:HASH_CHARS]


def row_fingerprints(ds: Dataset) -> pd.DataFrame:
    """id, text_sha1 and label of every training row (a target text is hashed too, as `sha1:...`)."""
    labels: list[Any]
    if "label" not in ds.frame.columns:
        labels = [None] * len(ds)
    elif ds.kind == "classification":
        labels = ds.frame["label"].tolist()
    else:
        labels = [None if v is None else f"sha1:{text_hash(str(v))}" for v in ds.frame["label"].tolist()]
    return pd.DataFrame({"id": ds.frame["id"].astype(str).to_numpy(),
                         "text_sha1": [text_hash(t) for t in ds.frame["text"].astype(str).tolist()],
                         "label": pd.Series(labels, dtype=object).to_numpy()})


def _pilot(findings: Sequence[Finding]) -> PilotFacts | None:
    ev = next((f.evidence for f in findings if isinstance(f.evidence, PilotGapEvidence)), None)
    if ev is None:
        return None
    return PilotFacts(gap=ev.gap, gap_against=ev.gap_against,
                      accuracy={k: float(v.accuracy) for k, v in ev.sets.items()},
                      macro_f1={k: float(v.macro_f1) for k, v in ev.sets.items()})


def _coverage(findings: Sequence[Finding]) -> dict[str, dict[str, float]]:
    ev = next((f.evidence for f in findings if isinstance(f.evidence, CoverageTable)), None)
    if ev is None:
        return {}
    out = {"train": dict(ev.train_overall)}
    if ev.real_overall is not None:
        out["real"] = dict(ev.real_overall)
    return out


def facts_from_findings(findings: Sequence[Finding]) -> RunFacts:
    """What an older folder's findings.jsonl still tells: label counts (class_balance), style statistics
    (real_gap / eval_too_clean), coverage (coverage_gap table), pilot gap."""
    facts = RunFacts(source="findings", coverage=_coverage(findings), pilot=_pilot(findings))
    balance = next((f.evidence for f in findings if f.split == "train" and isinstance(f.evidence, Frequencies)
                    and f.evidence.kind == "label_counts"), None)
    if balance is not None:
        facts.label_counts = dict(balance.counts)
        facts.label_counts_complete = not balance.counts_truncated
        facts.rows = balance.n_rows
    style = next((f.evidence for f in findings if isinstance(f.evidence, RealGapEvidence | EvalCleanEvidence)), None)
    if style is not None:
        facts.style = {str(k): dict(v) for k, v in style.stats.items()}
    return facts


def run_facts(ctx: AuditContext, findings: Sequence[Finding]) -> RunFacts:
    """summary.json `facts` for a finished run: label counts and style statistics computed from the
    loaded splits (style features are cached by the checks, so usually free), coverage and pilot gap
    from their findings."""
    from audit_agent.features.split_compare import style_stats

    facts = facts_from_findings(findings)
    facts.source = "summary"
    train = ctx.train.frame
    facts.rows = len(train)
    if ctx.train.kind == "classification" and "label" in train.columns:
        facts.label_counts = {str(k): int(v) for k, v in train["label"].dropna().value_counts().items()}
        facts.label_counts_complete = True
    style = {}
    for split in ("train", "eval", "real"):
        ds = getattr(ctx, split)
        if ds is not None and len(ds):
            style[split] = style_stats(ctx.features.style(split))
    facts.style = style
    return facts
