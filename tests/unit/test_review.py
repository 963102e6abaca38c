"""review_sample: the same number of rows per label, seeded, near twins side by side."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from audit_agent.checks import REGISTRY
from audit_agent.checks.review import MAX_REVIEW_ROWS, REVIEWER_COLUMNS, stratified_sample
from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.findings import Severity

review_sample = REGISTRY["review_sample"].run

WORDS = ["apple", "river", "stone", "cloud", "piano", "tiger", "lemon", "glass", "honey", "maple", "ocean",
         "pencil", "rocket", "violet", "window", "zebra"]


def _ctx(frame: pd.DataFrame, per_label: int = 24, seed: int = 0) -> AuditContext:
    cfg = AuditConfig.model_validate({"seed": seed, "checks": {"review_per_label": per_label}})
    return AuditContext(train=Dataset(Path("train.csv"), frame), config=cfg)


def _frame(sizes: dict[str, int]) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [(lab, " ".join(rng.choice(WORDS, 6))) for lab, n in sizes.items() for _ in range(n)]
    return pd.DataFrame({"id": [f"id{i}" for i in range(len(rows))], "text": [t for _, t in rows],
                         "label": [lab for lab, _ in rows]})


def test_balanced_per_label_and_seeded():
    frame = _frame({"a": 100, "b": 50, "c": 5})
    [f] = review_sample(_ctx(frame, per_label=10))
    ev = f.evidence
    json.dumps(ev.model_dump(mode="json"))
    assert f.severity == Severity.INFO and f.rows == []
    assert pd.Series(ev["groups"]).value_counts().to_dict() == {"a": 10, "b": 10, "c": 5}
    assert len(set(ev["row_ids"])) == 25 and set(ev["row_ids"]) <= set(frame["id"])
    label_of = dict(zip(frame["id"], frame["label"], strict=True))
    assert [label_of[r] for r in ev["row_ids"]] == ev["groups"]
    assert set(REVIEWER_COLUMNS) <= set(ev["columns"]) and len(ev["similarity_to_previous"]) == 25
    again = review_sample(_ctx(frame, per_label=10))[0].evidence["row_ids"]
    other = review_sample(_ctx(frame, per_label=10, seed=1))[0].evidence["row_ids"]
    assert again == ev["row_ids"] and set(other) != set(ev["row_ids"])


def test_near_twins_sit_side_by_side():
    frame = _frame({"a": 12})
    twins = {"id3": "please refund my last card payment", "id9": "please refund my last card payment!"}
    frame["text"] = [twins.get(i, t) for i, t in zip(frame["id"], frame["text"], strict=True)]
    order = review_sample(_ctx(frame, per_label=24))[0].evidence["row_ids"]
    assert abs(order.index("id3") - order.index("id9")) == 1


def test_many_labels_are_capped():
    frame = _frame({f"l{i}": 30 for i in range(150)})
    ev = review_sample(_ctx(frame, per_label=24))[0].evidence
    assert len(ev["row_ids"]) <= MAX_REVIEW_ROWS and ev["per_group"] == MAX_REVIEW_ROWS // 150
    assert ev["n_groups"] == 150


def test_stratified_sample_takes_at_most_k_per_group():
    groups = np.array(["x"] * 7 + ["y"] * 2)
    picked = stratified_sample(groups, 3, seed=5)
    assert sorted(groups[picked].tolist()) == ["x", "x", "x", "y", "y"]
