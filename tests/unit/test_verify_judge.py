"""Deterministic verification of judge claims: quotes, labels, and support from OOF / neighbours."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.tasks.judge import JudgeVerdict
from audit_agent.verify.judge import (
    RowSignals,
    SignalSource,
    canonical_label,
    canonical_verdict,
    check_quote,
    classifier_backs,
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
    assert match_quote("I’m", "I'm charged twice") == ("normalised", 100.0)  # found, though too short to count
    assert not check_quote("I’m", "I'm charged twice").found
    assert match_quote("my card was stolen at the airport", TEXT)[0] == "none"
    assert match_quote("", TEXT)[0] == "none"
    assert match_quote("a", TEXT)[0] == "none"
    # the whole text plus an invented continuation is not a quote
    assert match_quote(TEXT + " and also my card was stolen at the airport yesterday", TEXT)[0] == "none"


def test_a_quote_must_be_a_real_span_long_enough_to_mean_something() -> None:
    assert check_quote("coffee order", TEXT).found  # 12 characters, 2 content words
    assert check_quote("“money back”", "I want my money back").match == "normalised"  # typographic quotes
    three = check_quote("for", TEXT)
    assert not three.found and three.problem is not None and "shorter than" in three.problem
    assert check_quote("and I was", "and I was told").problem == "quote has no content word (only stop words)"
    assert not check_quote("TWICE!!!", TEXT).found  # one word
    # no fuzzy partial matches: one changed letter and the quote is not in the text
    fuzzy = check_quote("I was charged twice for my cofee order", TEXT)
    assert not fuzzy.found and fuzzy.match == "none"


def test_a_three_character_quote_does_not_verify_a_backed_claim() -> None:
    ok, ev = check(verdict("contradicted", "refund", "for"), RowSignals(p_best=0.7, p_given=0.1, knn_labels=["refund"] * 5))
    assert not ok and not ev["quote_found"] and ev["backed_by"] == ["classifier", "neighbours"]


def test_contradicted_verified_with_real_quote_and_oof_support() -> None:
    ok, ev = check(verdict("contradicted", "refund", "want my money back"), RowSignals(p_best=0.7, p_given=0.1))
    assert ok and ev["quote_found"] and ev["label_valid"] and ev["oof_agrees"] is True
    assert ev["failed_because"] == [] and ev["backed_by"] == ["classifier"]


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


def test_the_signals_must_back_the_proposed_label_not_just_doubt_the_given_one() -> None:
    """The classifier doubts 'balance' and prefers card_lost; the judge proposes refund: nothing backs
    refund, so the claim fails although the row is a good suspect."""
    signals = RowSignals(p_best=0.2, p_given=0.1, oof_top="card_lost", p_top=0.7, p_second=0.2,
                         knn_labels=["card_lost", "card_lost", "card_lost", "refund", "balance"])
    ok, ev = check(verdict("contradicted", "refund", "charged TWICE"), signals)
    assert not ok and ev["backed_by"] == [] and "no model-free signal backs best_label" in ev["failed_because"]
    assert check(verdict("contradicted", "card_lost", "charged TWICE"),
                 RowSignals(p_best=0.7, p_given=0.1, knn_labels=signals.knn_labels))[0]


def test_the_classifier_backs_a_label_only_above_its_floor() -> None:
    ok, ev = check(verdict("contradicted", "refund", "charged TWICE"), RowSignals(p_best=0.15, p_given=0.05))
    assert not ok and ev["oof_agrees"] is False


def test_with_many_labels_the_classifier_backs_its_top_two_above_a_uniform_share() -> None:
    """20 labels: the classifier spreads its probability, so a mislabelled row's second choice gets
    0.12 against 0.01 for the given label. Below the 0.25 floor it still backs the label when it is
    among the top two and above 1/20; not a label ranked third, nor one under a uniform share."""
    second = RowSignals(p_best=0.12, p_given=0.01, rank_best=2, classes=20, knn_labels=["card_lost"] * 5)
    ok, ev = check(verdict("contradicted", "refund", "charged TWICE"), second)
    assert ok and ev["backed_by"] == ["classifier"] and ev["oof_agrees"] is True and ev["oof_rank_best"] == 2
    third = RowSignals(p_best=0.12, p_given=0.01, rank_best=3, classes=20)
    ok, ev = check(verdict("contradicted", "refund", "charged TWICE"), third)
    assert not ok and ev["oof_agrees"] is False and "no model-free signal backs best_label" in ev["failed_because"]
    faint = RowSignals(p_best=0.04, p_given=0.01, rank_best=2, classes=20)
    assert not check(verdict("contradicted", "refund", "charged TWICE"), faint)[0]
    # with 3 labels a uniform share is 0.33, above the floor: the floor decides, as before
    assert not check(verdict("contradicted", "refund", "charged TWICE"),
                     RowSignals(p_best=0.2, p_given=0.1, rank_best=1, classes=3))[0]


def test_the_top_two_rule_never_backs_a_label_the_classifier_ranks_below_the_given_one() -> None:
    assert not classifier_backs(RowSignals(p_best=0.15, p_given=0.6, rank_best=2, classes=20))
    assert not classifier_backs(RowSignals(p_best=0.15, p_given=0.15, rank_best=1, classes=20))
    assert not classifier_backs(RowSignals(p_best=0.15, p_given=0.01, rank_best=None, classes=None))  # unknown rank
    assert classifier_backs(RowSignals(p_best=0.3, p_given=0.01, rank_best=4, classes=20))  # the floor, any rank


def test_neighbours_back_a_label_only_as_a_majority() -> None:
    split = ["refund", "refund", "balance", "balance", "card_lost"]
    assert not check(verdict("contradicted", "refund", "charged TWICE"),
                     RowSignals(p_best=0.1, p_given=0.8, knn_labels=split))[0]
    ok, ev = check(verdict("contradicted", "refund", "charged TWICE"),
                   RowSignals(p_best=0.1, p_given=0.8, knn_labels=["refund"] * 3 + ["balance"] * 2))
    assert ok and ev["backed_by"] == ["neighbours"] and ev["knn_majority"] == "refund"


def test_a_conflict_group_row_whose_other_label_is_not_the_proposed_one_fails() -> None:
    """The row's near duplicate carries card_lost; the judge proposes refund."""
    ok, ev = check(verdict("contradicted", "refund", "charged TWICE"),
                   RowSignals(p_best=0.1, p_given=0.5, neighbour_labels=["card_lost"], conflict_group=True))
    assert not ok and ev["conflict_group"] and "conflict_group" not in ev["backed_by"]


def test_a_conflict_group_alone_is_symmetric_and_needs_the_neighbours_outside_it() -> None:
    """Near duplicates labelled refund and balance: each side 'backs' the other's label, and the
    classifier trained on the twin echoes it; only neighbours outside the group can tell."""
    twin = RowSignals(p_best=0.8, p_given=0.1, neighbour_labels=["refund"], conflict_group=True,
                      knn_labels=["balance"] * 4 + ["refund"])
    ok, ev = check(verdict("contradicted", "refund", "charged TWICE"), twin)
    assert not ok and ev["backed_by"] == ["conflict_group"] and "symmetric" in ev["failed_because"][0]
    twin.knn_labels = ["refund"] * 4 + ["balance"]
    ok, ev = check(verdict("contradicted", "refund", "charged TWICE"), twin)
    assert ok and ev["backed_by"] == ["neighbours", "conflict_group"]


def test_a_mediocre_judge_needs_two_signals() -> None:
    one = RowSignals(p_best=0.7, p_given=0.1, knn_labels=["balance"] * 5)
    v = verdict("contradicted", "refund", "charged TWICE")
    assert verify_verdict(v, text=TEXT, given_label="balance", label_set=LABELS, signals=one).verified
    two = verify_verdict(v, text=TEXT, given_label="balance", label_set=LABELS, signals=one, min_backing=2)
    assert not two.verified and "2 needed" in two.evidence["failed_because"][0]


def test_an_uninformative_judge_verifies_nothing() -> None:
    strong = RowSignals(p_best=0.9, p_given=0.05, knn_labels=["refund"] * 5)
    result = verify_verdict(verdict("contradicted", "refund", "want my money back"), text=TEXT, given_label="balance",
                            label_set=LABELS, signals=strong, judge_informative=False)
    assert not result.verified and result.evidence["judge_informative"] is False
    assert result.evidence["failed_because"] == ["the judge is not informative on the calibration canaries"]


def test_contradicted_with_the_given_label_is_not_verified() -> None:
    ok, ev = check(verdict("contradicted", "balance", "charged TWICE"), RowSignals(p_best=0.9, p_given=0.9))
    assert not ok and "best_label equals the given label" in ev["failed_because"]


def test_ambiguous_needs_its_own_backing() -> None:
    v = verdict("ambiguous", "refund", "charged TWICE")
    assert check(v, RowSignals(p_top=0.45, p_second=0.4))[1]["backed_by"] == ["low_margin"]
    confident = RowSignals(p_best=0.05, p_given=0.9, p_top=0.9, p_second=0.05, knn_labels=["balance"] * 5)
    assert not check(v, confident)[0]
    split = RowSignals(p_top=0.9, p_second=0.05, knn_labels=["balance", "balance", "balance", "refund", "refund"])
    assert check(v, split)[1]["backed_by"] == ["neighbours_split"]
    assert check(v, RowSignals(p_top=0.9, p_second=0.05, neighbour_labels=["refund"], conflict_group=True))[0]
    assert not check(verdict("ambiguous", "refund", "invented words"), RowSignals(p_top=0.4, p_second=0.4))[0]


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
    assert sig.rank_best == 2 and sig.classes == 3
    assert src.for_row("a", "balance", "refund").rank_best == 2  # tied with card_lost: neither is above
    assert sig.neighbour_labels == ["refund"] and sig.conflict_group
    assert src.for_row("d", "refund", "card_lost").neighbour_labels == []
    assert src.rank_rows_by_label([0, 2, 3], "balance") == [2, 3, 0]


def test_signal_source_neighbours_leave_out_the_near_duplicate_group() -> None:
    import scipy.sparse as sp

    frame = pd.DataFrame({"id": list("abcdefg"), "text": list("abcdefg"),
                          "label": ["refund", "balance", "refund", "refund", "balance", "balance", "balance"]})
    ctx = AuditContext(train=Dataset(Path("x.csv"), frame), config=AuditConfig())
    # row a sits next to b (its near duplicate), then c, d, e, f, g by decreasing similarity
    X = sp.csr_matrix(np.array([[1, 0], [1, 0.01], [1, 0.1], [1, 0.2], [1, 0.3], [1, 0.4], [1, 0.5]]))
    probs = np.array([[0.45, 0.1, 0.45]] + [[0.1, 0.1, 0.8]] * 6)
    oof = SimpleNamespace(classes=["balance", "card_lost", "refund"], probs=probs, given=np.zeros(7, int), X=X)
    ctx.__dict__["features"] = SimpleNamespace(oof=oof, neighbors=SimpleNamespace(groups=lambda: [[0, 1]]))
    src = SignalSource(ctx)
    sig = src.for_row("a", "balance", "refund")
    assert sig.neighbour_labels == ["balance"] and sig.conflict_group
    assert sig.knn_labels == ["refund", "refund", "balance", "balance", "balance"]  # b (the twin) left out
    assert sig.margin == 0.0 and sig.p_top == 0.45
    assert src.rank_rows_by_doubt([2, 0, 1]) == [1, 0, 2]  # b: p(balance) 0.1, a: p(refund) 0.45, c: 0.8


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
