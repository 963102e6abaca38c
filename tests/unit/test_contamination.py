"""contamination (eval rows seen in training) and real_in_train."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from audit_agent.checks import REGISTRY
from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from tests.clean_rows import CLEAN

contamination = REGISTRY["contamination"].run
real_in_train = REGISTRY["real_in_train"].run

TRAIN = CLEAN[:6]
EVAL_CLEAN = [*CLEAN[6:9], CLEAN[10]]  # not a copy of any TRAIN row


def dataset(rows: list[tuple[str, str]], prefix: str) -> Dataset:
    frame = pd.DataFrame({"id": [f"{prefix}{i}" for i in range(len(rows))],
                          "text": [t for t, _ in rows], "label": [lab for _, lab in rows]})
    return Dataset(Path(f"{prefix}.csv"), frame)


def test_eval_rows_found_in_training() -> None:
    eval_rows = [*EVAL_CLEAN, ("what time does the branch open on saturdays", "opening_hours"),
                 ("I would like to close my acount today please", "close_account")]
    ctx = AuditContext(train=dataset(TRAIN, "t"), eval=dataset(eval_rows, "e"), config=AuditConfig())
    findings = contamination(ctx)
    assert len(findings) == 1
    f = findings[0]
    assert f.split == "eval" and f.severity.value == "high"
    assert sorted(f.rows) == ["e4", "e5"]
    ev = f.evidence
    assert ev["matched"] == 2 and ev["exact"] == 1 and ev["near"] == 1
    assert {(p["id"], p["train_id"]) for p in ev["pairs"]} == {("e4", "t0"), ("e5", "t5")}


def test_clean_eval_has_no_findings() -> None:
    ctx = AuditContext(train=dataset(TRAIN, "t"), eval=dataset(EVAL_CLEAN, "e"), config=AuditConfig())
    assert contamination(ctx) == []


def test_real_rows_in_training_are_info() -> None:
    real = [*EVAL_CLEAN, ("My card was swallowed by the cash machine!", "card_swallowed")]
    ctx = AuditContext(train=dataset(TRAIN, "t"), real=dataset(real, "r"), config=AuditConfig())
    findings = real_in_train(ctx)
    assert [(f.split, f.severity.value, f.rows) for f in findings] == [("real", "info", ["r4"])]
