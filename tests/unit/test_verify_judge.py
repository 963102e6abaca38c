"""Deterministic verification of judge claims: quotes, labels, and support from OOF / neighbours."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from audit_agent.config import AuditConfig
from audit_agent.dataset import AuditContext, Dataset
from audit_agent.tasks.judge import JudgeVerdict
from audit_agent.verify.judge import (
    RowSignals,
    SignalSource,
    canonical_label,
    canonical_verdict,
    match_quote,
    verify_verdict,
)

TEXT = "Hi,  I was charged TWICE for my coffee order and I want my money back please"
LABELS = ["refund", "card_lost", "balance"]


def verdict(kind: str, best: str, quote: str) -> JudgeVerdict:
    return JudgeVerdict.model_validate({"verdict": kind, "best_label": best, "evidence": quote,
                                        "reason": "r", "confidence": "high"})


def check(v: JudgeVerdict, signals: RowSignals, given: str = "balance") -> tuple[bool, dict]:
    result = verify_verdict(v, text=TEXT, given_label=given, label_set=LABELS, signals=signals)
    return result.verified, result.evidence


def test_quote_matching_kinds() -> None:
    assert match_quote("charged TWICE", TEXT)[0] == "exact"
    assert match_quote('"i was charged twice"', TEXT)[0] == "normalised"
    assert match_quote("I was charged twice for my cofee order", TEXT)[0] == "fuzzy"
    assert match_quote("my card was stolen at the airport", TEXT)[0] == "none"
    assert match_quote("", TEXT)[0] == "none"
    assert match_quote("a", TEXT)[0] == "none"
    # the whole text plus an invented continuation is not a quote
    assert match_quote(TEXT + " and also my card was stolen at the airport yesterday", TEXT)[0] == "none"


def test_contradicted_verified_with_real_quote_and_oof_support() -> None:
    ok, ev = check(verdict("contradicted", "refund", "want my money back"), RowSignals(p_best=0.7, p_given=0.1))
    assert ok and ev["quote_found"] and ev["label_valid"] and ev["oof_agrees"] is True
    assert ev["failed_because"] == []


def test_invented_quote_is_rejected() -> None:
    ok, ev = check(verdict("contradicted", "refund", "please issue a refund to my visa card"),
                   RowSignals(p_best=0.7, p_given=0.1))
    assert not ok and not ev["quote_found"] and "quote not found in the text" in ev["failed_because"]


def test_label_outside_the_set_is_rejected() -> None:
    ok, ev = check(verdict("contradicted", "chargeback", "charged TWICE"), RowSignals(p_best=0.9, p_given=0.1))
    assert not ok and ev["label_valid"] is False


def test_contradicted_without_deterministic_support_is_downgraded() -> None:
    ok, ev = check(verdict("contradicted", "refund", "charged TWICE"), RowSignals(p_best=0.1, p_given=0.8))
    assert not ok and ev["oof_agrees"] is False and ev["neighbour_labels_agree"] is False
    ok, ev = check(verdict("contradicted", "refund", "charged TWICE"), RowSignals())  # no signals at all
    assert not ok and ev["oof_agrees"] is None


def test_contradicted_supported_by_neighbour_labels() -> None:
    ok, ev = check(verdict("contradicted", "refund", "charged TWICE"),
                   RowSignals(p_best=0.1, p_given=0.8, neighbour_labels=["refund", "balance"], conflict_group=True))
    assert ok and ev["neighbour_labels_agree"] and ev["oof_agrees"] is False


def test_contradicted_with_the_given_label_is_not_verified() -> None:
    ok, ev = check(verdict("contradicted", "balance", "charged TWICE"), RowSignals(p_best=0.9, p_given=0.9))
    assert not ok and "best_label equals the given label" in ev["failed_because"]


def test_ambiguous_needs_a_doubt_signal() -> None:
    v = verdict("ambiguous", "refund", "charged TWICE")
    assert check(v, RowSignals(p_best=0.4, p_given=0.3))[0]
    assert not check(v, RowSignals(p_best=0.05, p_given=0.9))[0]
    assert check(v, RowSignals(p_best=0.05, p_given=0.9, neighbour_labels=["refund"], conflict_group=True))[0]
    assert not check(verdict("ambiguous", "refund", "invented words"), RowSignals(p_given=0.1))[0]


def _ctx(kind: str = "classification") -> AuditContext:
    frame = pd.DataFrame({"id": ["a", "b", "c", "d"], "text": ["t1", "t2", "t3", "t4"],
                          "label": ["refund", "refund", "balance", "card_lost"]})
    return AuditContext(train=Dataset(Path("x.csv"), frame, kind=kind), config=AuditConfig())  # type: ignore[arg-type]


def test_signal_source_reads_oof_and_groups() -> None:
    ctx = _ctx()
    probs = np.array([[0.1, 0.1, 0.8], [0.1, 0.1, 0.8], [0.6, 0.1, 0.3], [0.2, 0.7, 0.1]])
    oof = SimpleNamespace(classes=["balance", "card_lost", "refund"], probs=probs, given=np.array([2, 2, 0, 1]))
    ctx.__dict__["features"] = SimpleNamespace(oof=oof, neighbors=SimpleNamespace(groups=lambda: [[1, 2]]))
    src = SignalSource(ctx)
    sig = src.for_row("c", "refund", "balance")
    assert sig.p_best == 0.3 and sig.p_given == 0.6 and sig.oof_top == "balance"
    assert sig.neighbour_labels == ["refund"] and sig.conflict_group
    assert src.for_row("d", "refund", "card_lost").neighbour_labels == []
    assert src.rank_rows_by_label([0, 2, 3], "balance") == [2, 3, 0]


def test_signal_source_degrades_without_features() -> None:
    ctx = _ctx()

    class Missing:
        @property
        def oof(self) -> None:
            raise NotImplementedError("not built")

        @property
        def neighbors(self) -> None:
            raise AttributeError("no index")

    ctx.__dict__["features"] = Missing()
    src = SignalSource(ctx)
    sig = src.for_row("a", "balance", "refund")
    assert sig.p_best is None and sig.neighbour_labels == [] and len(src.notes) == 2
    gen = SignalSource(_ctx("generation"))
    assert gen.oof is None and "no class labels" in gen.notes[0]


def test_label_spelling_variants_snap_to_the_one_real_label() -> None:
    labels = ["calendar_update", "calendar", "Refund_not_showing_up", "card-lost", "card_lost"]
    assert canonical_label("calendar-update", labels) == "calendar_update"
    assert canonical_label("Calendar Update", labels) == "calendar_update"
    assert canonical_label("refund not showing up", labels) == "Refund_not_showing_up"
    assert canonical_label("calendar", labels) == "calendar"
    assert canonical_label("card lost", labels) is None  # two labels share the spelling key: no guess
    assert canonical_label("calendar_updates", labels) is None  # a different word is not a spelling variant
    v = JudgeVerdict.model_validate({"verdict": "ambiguous", "best_label": "calendar-update", "evidence": "march",
                                     "reason": "r", "confidence": "low"})
    fixed, raw = canonical_verdict(v, labels)
    assert fixed.best_label == "calendar_update" and raw == "calendar-update" and v.best_label == "calendar-update"
    assert canonical_verdict(fixed, labels) == (fixed, None)
