"""class_balance: rare classes, label spelling variants, labels missing from train, task and
target frequencies; a balanced set raises nothing above info."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from audit_agent.checks import REGISTRY
from audit_agent.checks.balance import label_key
from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.findings import Severity

class_balance = REGISTRY["class_balance"].run


def _frame(label_counts: dict[str, int], prefix: str = "t", **extra: list[str]) -> pd.DataFrame:
    labels = [lab for lab, n in label_counts.items() for _ in range(n)]
    frame = pd.DataFrame({"id": [f"{prefix}{i}" for i in range(len(labels))],
                          "text": [f"row {i} about {lab}" for i, lab in enumerate(labels)], "label": labels})
    for col, values in extra.items():
        frame[col] = values
    return frame


def _ctx(train: pd.DataFrame, eval_: pd.DataFrame | None = None, kind: str = "classification") -> AuditContext:
    return AuditContext(train=Dataset(Path("train.csv"), train, kind=kind),  # type: ignore[arg-type]
                        eval=Dataset(Path("eval.csv"), eval_) if eval_ is not None else None,
                        config=AuditConfig())


def _kind(findings, kind):
    return [f for f in findings if getattr(f.evidence, "kind", None) == kind]


def test_balanced_labels_are_info_only():
    findings = class_balance(_ctx(_frame({"a": 30, "b": 30, "c": 28})))
    assert all(f.severity == Severity.INFO for f in findings)
    [summary] = _kind(findings, "label_counts")
    assert summary.evidence["counts"] == {"a": 30, "b": 30, "c": 28}
    assert summary.evidence["rare"] == [] and summary.evidence["imbalance_ratio"] < 1.1


def test_rare_class_and_imbalance():
    findings = class_balance(_ctx(_frame({"big": 200, "mid": 60, "tiny": 3})))
    [summary] = _kind(findings, "label_counts")
    assert summary.severity == Severity.MEDIUM and summary.evidence["imbalance_ratio"] > 60
    [rare] = _kind(findings, "rare_labels")
    assert rare.severity == Severity.MEDIUM and rare.labels == ["tiny"]
    assert rare.evidence["rare_counts"] == {"tiny": 3} and len(rare.rows) == 3


def test_label_variants_are_high():
    train = _frame({"billing": 40, "Billing ": 5, "card-payment": 20, "card_payment": 20, "other": 30})
    findings = class_balance(_ctx(train))
    json.dumps([f.evidence.model_dump(mode="json") for f in findings])
    variants = _kind(findings, "label_variants")
    assert {f.evidence["normalised"] for f in variants} == {"billing", "cardpayment"}
    assert all(f.severity == Severity.HIGH for f in variants)
    billing = next(f for f in variants if f.evidence["normalised"] == "billing")
    assert billing.evidence["most_used"] == "billing" and len(billing.rows) == 5
    assert label_key("Card-Payment ") == label_key("card_payment")


def test_eval_labels_missing_from_train():
    train = _frame({"a": 30, "b": 30, "c": 30})
    eval_ = _frame({"a": 5, "b": 5, "d": 4}, prefix="e")
    findings = class_balance(_ctx(train, eval_))
    [missing] = _kind(findings, "missing_from_train")
    assert missing.severity == Severity.HIGH and missing.split == "eval" and missing.labels == ["d"]
    assert len(missing.rows) == 4 and all(str(r).startswith("e") for r in missing.rows)
    [untested] = _kind(findings, "missing_from_eval")
    assert untested.labels == ["c"] and untested.severity == Severity.LOW


def test_task_frequency():
    train = _frame({"a": 40, "b": 40}, task=["qa"] * 78 + ["summarise"] * 2)
    findings = class_balance(_ctx(train))
    [tasks] = _kind(findings, "task_counts")
    assert tasks.evidence["counts"] == {"qa": 78, "summarise": 2}
    [rare] = _kind(findings, "rare_tasks")
    assert "summarise" in rare.evidence["rare_counts"]


def test_generation_targets_repeat():
    repeated = pd.DataFrame({"id": [str(i) for i in range(50)], "text": [f"question {i}" for i in range(50)],
                             "label": ["Sorry, I cannot help with that."] * 30 + [f"answer {i}" for i in range(20)]})
    [f] = class_balance(_ctx(repeated, kind="generation"))
    assert f.evidence["kind"] == "target_repetition" and f.severity == Severity.MEDIUM
    assert f.evidence["n_distinct"] == 21 and f.evidence["most_repeated"][0]["count"] == 30
    varied = repeated.assign(label=[f"answer {i}" for i in range(50)])
    [g] = class_balance(_ctx(varied, kind="generation"))
    assert g.severity == Severity.INFO and g.evidence["distinct_share"] == 1.0
