"""pilot_gap on synthetic data: a style shift between train and real shows up as a gap."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

from audit_agent.checks import REGISTRY
from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset

pilot_gap = REGISTRY["pilot_gap"].run

FORMAL = {
    "billing": ["invoice", "charge", "refund", "payment"],
    "shipping": ["parcel", "delivery", "courier", "shipment"],
    "account": ["password", "login", "username", "profile"],
}
SLANG = {  # the same intents, written with words the training set never uses
    "billing": ["money back", "overcharged", "cash", "paid twice"],
    "shipping": ["box", "stuff", "arrive", "mail guy"],
    "account": ["locked out", "cant get in", "forgot pw", "hacked"],
}


def _rows(vocab: dict[str, list[str]], n: int, seed: int, template: str) -> pd.DataFrame:
    rnd = random.Random(seed)
    rows = [(template.format(rnd.choice(w), rnd.choice(w)), lab) for lab, w in vocab.items() for _ in range(n)]
    return pd.DataFrame({"id": [str(i) for i in range(len(rows))], "text": [t for t, _ in rows],
                         "label": [lab for _, lab in rows]})


def _ctx(real: pd.DataFrame) -> AuditContext:
    train = _rows(FORMAL, 60, 1, "I would like assistance regarding my {} and the {}.")
    return AuditContext(train=Dataset(path=Path("t.csv"), frame=train), config=AuditConfig(),
                        real=Dataset(path=Path("r.csv"), frame=real))


def test_gap_appears_when_real_rows_use_another_style() -> None:
    real = _rows(SLANG, 15, 2, "yo {} {} lol")
    (finding,) = pilot_gap(_ctx(real))
    assert finding.severity.value == "high"
    ev = finding.evidence
    assert ev["gap"] > 0.15 and ev["sets"]["held_out"]["accuracy"] > 0.9
    assert ev["sets"]["real"]["scoreable_rows"] == 45


def test_no_gap_when_real_rows_match_training() -> None:
    real = _rows(FORMAL, 15, 3, "I would like assistance regarding my {} and the {}.")
    real.loc[0, "label"] = "unknown_label"  # not scoreable: must be counted, not scored
    (finding,) = pilot_gap(_ctx(real))
    assert finding.severity.value == "info"
    assert finding.evidence["sets"]["real"]["scoreable_rows"] == 44
    assert finding.evidence["sets"]["real"]["labelled_rows"] == 45


def test_no_finding_without_eval_or_real() -> None:
    train = _rows(FORMAL, 20, 1, "help with {} {}")
    ctx = AuditContext(train=Dataset(path=Path("t.csv"), frame=train), config=AuditConfig())
    assert pilot_gap(ctx) == []
