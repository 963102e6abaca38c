"""The facts about one run that comparing two audits needs: label counts, style statistics per split,
messy-input coverage, the pilot gap, and a fingerprint of every training row (id, text hash, label).

`run_facts(result)` is what summary.json keeps under `facts`; `row_fingerprints(ds)` what rows.parquet
holds. `facts_from_findings(findings)` rebuilds what it can from findings.jsonl, for audit folders
written before summary.json had `facts`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from pydantic import BaseModel

from audit_agent.dataset import Dataset
from audit_agent.findings import Finding

if TYPE_CHECKING:
    from audit_agent.run_result import RunResult

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


def _first(findings: Sequence[Finding], check: str, **evidence: Any) -> Finding | None:
    for f in findings:
        if f.check == check and f.split in ("train", "real", "eval") and all(
                f.evidence.get(k) == v for k, v in evidence.items()):
            return f
    return None


def _pilot(findings: Sequence[Finding]) -> PilotFacts | None:
    f = _first(findings, "pilot_gap")
    if f is None:
        return None
    sets = f.evidence.get("sets") or {}
    return PilotFacts(
        gap=f.evidence.get("gap"), gap_against=f.evidence.get("gap_against"),
        accuracy={k: float(v["accuracy"]) for k, v in sets.items() if isinstance(v, dict) and "accuracy" in v},
        macro_f1={k: float(v["macro_f1"]) for k, v in sets.items() if isinstance(v, dict) and "macro_f1" in v})


def _coverage(findings: Sequence[Finding]) -> dict[str, dict[str, float]]:
    f = _first(findings, "coverage_gap", kind="table")
    if f is None:
        return {}
    out = {}
    for split, key in (("train", "train_overall"), ("real", "real_overall")):
        if isinstance(f.evidence.get(key), dict):
            out[split] = {str(k): float(v) for k, v in f.evidence[key].items()}
    return out


def facts_from_findings(findings: Sequence[Finding]) -> RunFacts:
    """What an older folder's findings.jsonl still tells: label counts (class_balance), style statistics
    (real_gap / eval_too_clean), coverage (coverage_gap table), pilot gap."""
    facts = RunFacts(source="findings", coverage=_coverage(findings), pilot=_pilot(findings))
    balance = _first(findings, "class_balance", kind="label_counts")
    if balance is not None and isinstance(balance.evidence.get("counts"), dict):
        facts.label_counts = {str(k): int(v) for k, v in balance.evidence["counts"].items()}
        facts.label_counts_complete = not balance.evidence.get("counts_truncated", False)
        facts.rows = balance.evidence.get("n_rows")
    for check in ("real_gap", "eval_too_clean"):
        f = _first(findings, check)
        if f is not None and isinstance(f.evidence.get("stats"), dict):
            facts.style = {str(k): dict(v) for k, v in f.evidence["stats"].items() if isinstance(v, dict)}
            break
    return facts


def run_facts(result: RunResult) -> dict[str, Any]:
    """summary.json `facts` for a finished run: label counts and style statistics computed from the
    loaded splits (style features are cached by the checks, so usually free), coverage and pilot gap
    from their findings."""
    from audit_agent.checks.real_gap import style_stats
    from audit_agent.features.style import split_style

    ctx = result.ctx
    facts = facts_from_findings(result.findings)
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
            style[split] = style_stats(split_style(ctx, split))
    facts.style = style
    return facts.model_dump(mode="json")
