"""Class balance: label frequencies, rare classes, labels missing from a split, label spelling
variants, task frequencies, and for generation data how often targets repeat."""

from __future__ import annotations

import re
from typing import Literal

import pandas as pd

from audit_agent.checks.base import Check
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.findings import Evidence, Finding, Record, RowId, Severity

MAX_LABELS_IN_EVIDENCE = 1000
MAX_ROWS = 1000
MAX_EXAMPLES = 20
IMBALANCE_MEDIUM = 10.0


def label_key(label: str) -> str:
    """What remains of a label when case, whitespace and punctuation are ignored."""
    return re.sub(r"[\W_]+", "", str(label).lower())


def _counts(ds: Dataset, column: str) -> pd.Series:
    return ds.frame[column].dropna().astype(str).value_counts()


def _rows_with(ds: Dataset, column: str, values: list[str]) -> list[RowId]:
    ids = ds.frame.loc[ds.frame[column].astype(str).isin(values), "id"].astype(str)
    return list(ids.iloc[:MAX_ROWS])


def _rare(counts: pd.Series, min_count: int, rare_share: float) -> pd.Series:
    """Classes below `min_count` rows or below `rare_share` x the mean class share."""
    mean_count = counts.sum() / max(len(counts), 1)
    return counts[(counts < min_count) | (counts < rare_share * mean_count)].sort_values()


def _frequency_findings(ds: Dataset, column: str, what: str, ctx: AuditContext) -> list[Finding]:
    """Summary of `column` frequencies plus a finding for rare values."""
    cfg = ctx.config.checks
    counts = _counts(ds, column)
    if counts.empty:
        return []
    rare = _rare(counts, cfg.min_class_count, cfg.rare_class_share)
    ratio = float(counts.max() / counts.min())
    total = int(counts.sum())
    shown = counts.head(MAX_LABELS_IN_EVIDENCE)
    summary_sev = Severity.MEDIUM if ratio >= IMBALANCE_MEDIUM else Severity.INFO
    findings = [Finding(
        check="class_balance", severity=summary_sev,
        message=(f"{len(counts)} {what}s; largest {counts.index[0]!r} has {int(counts.iloc[0])} rows, "
                 f"smallest {counts.index[-1]!r} has {int(counts.iloc[-1])} (imbalance ratio {ratio:.1f}); "
                 f"{len(rare)} rare"),
        evidence={
            "kind": f"{what}_counts", "column": column, "n_rows": total, "n_values": len(counts),
            "counts": {str(k): int(v) for k, v in shown.items()},
            "shares": {str(k): round(float(v) / total, 5) for k, v in shown.items()},
            "counts_truncated": len(counts) > len(shown),
            "imbalance_ratio": round(ratio, 3), "mean_count": round(total / len(counts), 2),
            "rare": [str(k) for k in rare.index[:MAX_LABELS_IN_EVIDENCE]],
            "min_class_count": cfg.min_class_count, "rare_class_share": cfg.rare_class_share,
        },
    )]
    if len(rare):
        names = [str(k) for k in rare.index]
        findings.append(Finding(
            check="class_balance", severity=Severity.MEDIUM,
            message=(f"{len(rare)} rare {what}s (< {cfg.min_class_count} rows or < {cfg.rare_class_share:g} x "
                     f"the mean of {total / len(counts):.0f}): "
                     + ", ".join(f"{k} ({int(v)})" for k, v in rare.head(10).items())
                     + (" ..." if len(rare) > 10 else "")),
            rows=_rows_with(ds, column, names), labels=names[:MAX_LABELS_IN_EVIDENCE] if column == "label" else [],
            evidence={"kind": f"rare_{what}s", "rare_counts": {str(k): int(v) for k, v in rare.head(MAX_LABELS_IN_EVIDENCE).items()},
                      "mean_count": round(total / len(counts), 2)},
        ))
    return findings


def _variant_findings(ctx: AuditContext) -> list[Finding]:
    """Labels that differ only by case/whitespace/punctuation, across all splits (high)."""
    per_split: dict[str, pd.Series] = {}
    for split in ("train", "eval", "real"):
        ds: Dataset | None = getattr(ctx, split)
        if ds is not None and ds.kind == "classification" and ds.has_labels:
            per_split[split] = _counts(ds, "label")
    spellings: dict[str, dict[str, dict[str, int]]] = {}
    for split, counts in per_split.items():
        for lab, n in counts.items():
            spellings.setdefault(label_key(str(lab)), {}).setdefault(str(lab), {})[split] = int(n)
    findings = []
    for key, variants in sorted(spellings.items()):
        if len(variants) < 2:
            continue
        total = {v: sum(c.values()) for v, c in variants.items()}
        main = max(total, key=lambda v: (total[v], v))
        minority = [v for v in variants if v != main]
        rows = _rows_with(ctx.train, "label", minority) if "train" in per_split else []
        findings.append(Finding(
            check="class_balance", severity=Severity.HIGH, labels=sorted(variants),
            message=(f"label spelled {len(variants)} ways: " + ", ".join(f"{v!r} ({total[v]})" for v in sorted(variants))
                     + f"; the model will treat them as different classes (most used: {main!r})"),
            rows=rows,
            evidence={"kind": "label_variants", "normalised": key, "variants": variants, "most_used": main},
        ))
    return findings[:MAX_EXAMPLES * 5]


def _missing_findings(ctx: AuditContext) -> list[Finding]:
    """Labels present in eval/real but absent from train (high), and train labels never evaluated (low)."""
    train_labels = set(_counts(ctx.train, "label").index.astype(str))
    train_keys = {label_key(lab) for lab in train_labels}
    findings = []
    for split in ("eval", "real"):
        ds: Dataset | None = getattr(ctx, split)
        if ds is None or not ds.has_labels or ds.kind != "classification":
            continue
        counts = _counts(ds, "label")
        # spelling variants are reported by _variant_findings; here only labels train truly lacks
        unseen = counts[[label_key(str(lab)) not in train_keys for lab in counts.index]]
        if len(unseen):
            findings.append(Finding(
                check="class_balance", severity=Severity.HIGH, split=split,  # type: ignore[arg-type]
                labels=[str(v) for v in unseen.index[:MAX_LABELS_IN_EVIDENCE]],
                rows=_rows_with(ds, "label", [str(v) for v in unseen.index]),
                message=(f"{len(unseen)} {split} labels never appear in train ({int(unseen.sum())} {split} rows): "
                         + ", ".join(str(v) for v in unseen.index[:10]) + (" ..." if len(unseen) > 10 else "")),
                evidence={"kind": "missing_from_train", "split": split,
                          "counts": {str(k): int(v) for k, v in unseen.head(MAX_LABELS_IN_EVIDENCE).items()}},
            ))
        split_keys = {label_key(str(lab)) for lab in counts.index}
        untested = sorted(lab for lab in train_labels if label_key(lab) not in split_keys)
        if untested and split == "eval":
            findings.append(Finding(
                check="class_balance", severity=Severity.LOW, split=split,  # type: ignore[arg-type]
                labels=untested[:MAX_LABELS_IN_EVIDENCE],
                message=(f"{len(untested)} train labels have no {split} rows, so they are never tested: "
                         + ", ".join(untested[:10]) + (" ..." if len(untested) > 10 else "")),
                evidence={"kind": f"missing_from_{split}", "split": split, "labels": untested[:MAX_LABELS_IN_EVIDENCE]},
            ))
    return findings


def _target_findings(ds: Dataset) -> list[Finding]:
    """Generation data: how many targets are distinct, and which repeat most."""
    targets = ds.frame["label"].dropna().astype(str).str.strip()
    if targets.empty:
        return []
    counts = targets.value_counts()
    n = len(targets)
    distinct_share = len(counts) / n
    repeated = counts[counts > 1]
    repeated_rows = int(repeated.sum())
    top_share = float(counts.iloc[0]) / n if counts.iloc[0] > 1 else 0.0
    severity = Severity.INFO
    if distinct_share < 0.5 or top_share >= 0.1:
        severity = Severity.MEDIUM
    elif distinct_share < 0.9 or top_share >= 0.02:
        severity = Severity.LOW
    top = repeated.head(MAX_EXAMPLES)
    rows: list[RowId] = list(ds.frame.loc[ds.frame["label"].astype(str).str.strip().isin(top.index[:5]), "id"].astype(str))
    return [Finding(
        check="class_balance", severity=severity,
        message=(f"{len(counts)} distinct targets in {n} rows ({distinct_share:.1%}); {len(repeated)} targets "
                 f"repeat, covering {repeated_rows} rows; the most repeated appears {int(counts.iloc[0])} times"),
        rows=rows[:MAX_ROWS],
        evidence={"kind": "target_repetition", "n_rows": n, "n_distinct": len(counts),
                  "distinct_share": round(distinct_share, 5), "repeated_targets": len(repeated),
                  "rows_with_repeated_target": repeated_rows, "top_share": round(top_share, 5),
                  "most_repeated": [{"target": str(t)[:200], "count": int(c)} for t, c in top.items()]},
    )]


def _class_balance(ctx: AuditContext) -> list[Finding]:
    """Label (or target) frequencies and the balance problems they reveal."""
    train = ctx.train
    findings: list[Finding] = []
    if train.kind == "classification":
        findings += _frequency_findings(train, "label", "label", ctx)
        findings += _variant_findings(ctx)
        findings += _missing_findings(ctx)
    else:
        findings += _target_findings(train)
    if "task" in train.frame.columns and train.frame["task"].notna().any():
        findings += _frequency_findings(train, "task", "task", ctx)
    return findings


class Frequencies(Evidence):
    kind: Literal["label_counts", "task_counts"]
    column: str
    n_rows: int
    n_values: int
    counts: dict[str, int]
    shares: dict[str, float]
    counts_truncated: bool
    imbalance_ratio: float
    mean_count: float
    rare: list[str]
    min_class_count: int
    rare_class_share: float


class RareValues(Evidence):
    kind: Literal["rare_labels", "rare_tasks"]
    rare_counts: dict[str, int]
    mean_count: float


class LabelVariants(Evidence):
    kind: Literal["label_variants"]
    normalised: str
    variants: dict[str, dict[str, int]]
    most_used: str


class MissingFromTrain(Evidence):
    kind: Literal["missing_from_train"]
    split: str
    counts: dict[str, int]


class UntestedLabels(Evidence):
    kind: Literal["missing_from_eval"]
    split: str
    labels: list[str]


class RepeatedTarget(Record):
    target: str
    count: int


class TargetRepetition(Evidence):
    kind: Literal["target_repetition"]
    n_rows: int
    n_distinct: int
    distinct_share: float
    repeated_targets: int
    rows_with_repeated_target: int
    top_share: float
    most_repeated: list[RepeatedTarget]


class ClassBalance(Check):
    """Label (or target) frequencies and the balance problems they reveal."""

    name = "class_balance"
    description = "Label frequencies, rare classes, labels missing from a split, label spelling variants"
    needs = ("labels",)
    recommendation = ("Generate more rows for the rare labels (or merge/drop them) before tuning; a model "
                      "rarely learns a class from a handful of rows.")
    Evidence = Frequencies | RareValues | LabelVariants | MissingFromTrain | UntestedLabels | TargetRepetition

    def run(self, ctx: AuditContext) -> list[Finding]:
        return _class_balance(ctx)

    def subject(self, f: Finding) -> str | None:
        ev = f.evidence
        if isinstance(ev, LabelVariants):
            return f"label_variants: {ev.normalised}"
        return f"{ev['kind']} ({f.split})" if "kind" in ev else None

    def label_counts(self, findings: list[Finding]) -> dict[str, int]:
        """Training label counts as this check reported them (empty when it did not run)."""
        for f in findings:
            ev = self.evidence(f, Frequencies)
            if f.check == self.name and f.split == "train" and ev is not None and ev.kind == "label_counts":
                return dict(ev.counts)
        return {}
