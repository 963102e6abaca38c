"""Calibration canaries (choice, scoring), the balanced accuracy on known cases with its MOVER interval
(informative or not), Wilson intervals, the per-label error estimate and two judges' kappa."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from audit_agent.jobs.judge_calibration import calibrate, mover_sum, swapped_share
from audit_agent.jobs.judge_canaries import Canary, canary_count, choose_canaries
from audit_agent.jobs.judge_stats import Disagreement, agreement, error_estimate, judge_answer, wilson


def wilson_by_hand(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@pytest.mark.parametrize(("k", "n"), [(0, 10), (7, 10), (16, 18), (18, 18), (1, 1), (45, 200)])
def test_wilson_matches_the_formula(k: int, n: int) -> None:
    p = wilson(k, n)
    low, high = wilson_by_hand(k, n)
    assert p.rate == round(k / n, 4)
    assert p.low == pytest.approx(low, abs=1e-4) and p.high == pytest.approx(high, abs=1e-4)
    assert wilson(0, 0).rate is None and wilson(0, 0).low is None


@pytest.mark.parametrize(("budget", "expected"), [(0, 0), (12, 4), (30, 10), (100, 10), (180, 18), (1000, 100)])
def test_canary_count_is_about_a_tenth_at_least_ten_at_most_a_third(budget: int, expected: int) -> None:
    assert canary_count(budget, 0.1, 10) == expected
    assert canary_count(budget, 0.0, 10) == 0


def _rows(per_label: int = 30, labels: tuple[str, ...] = ("a", "b", "c")) -> tuple[list[str], list[str], np.ndarray]:
    ids, labs, probs = [], [], []
    for lab in labels:
        for i in range(per_label):
            ids.append(f"{lab}{i}")
            labs.append(lab)
            probs.append(0.99 - i / 100)  # a0 is the most confident row of a
    return ids, labs, np.asarray(probs)


def test_canaries_are_confident_unnamed_rows_half_swapped_to_another_label() -> None:
    ids, labels, own = _rows()
    own[ids.index("b0")] = 0.2  # not confident
    canaries = choose_canaries(ids, labels, own, labels, excluded={"a0", "a1"}, n=12, seed=4)
    assert len(canaries) == 12 and len({c.row_id for c in canaries}) == 12
    assert not {c.row_id for c in canaries} & {"a0", "a1", "b0"}
    assert all(c.row_id.startswith(c.true_label) for c in canaries)
    assert all(own[ids.index(c.row_id)] >= 0.5 for c in canaries)
    swapped = [c for c in canaries if c.kind == "swapped"]
    assert len(swapped) == 6 and all(c.shown_label != c.true_label for c in swapped)
    assert all(c.shown_label == c.true_label for c in canaries if c.kind == "confirmed")
    assert {c.true_label for c in canaries} == {"a", "b", "c"}
    assert choose_canaries(ids, labels, own, labels, set(), 12, seed=4) == \
        choose_canaries(ids, labels, own, labels, set(), 12, seed=4)
    assert choose_canaries(ids, labels, None, None, set(), 12, seed=4) == []  # no classifier, no canaries
    # a row the classifier gives another top label is no canary, however high its own probability
    tops = ["b" if lab == "a" else lab for lab in labels]
    assert all(c.true_label != "a" for c in choose_canaries(ids, labels, own, tops, set(), 12, seed=4))


def test_canary_answers_are_scored_against_the_known_label() -> None:
    swapped = Canary("r1", "refund", "balance", "swapped")
    confirmed = Canary("r2", "refund", "refund", "confirmed")
    assert swapped.is_right("contradicted", "refund")
    assert not swapped.is_right("contradicted", "card_lost")  # caught, but names the wrong label
    assert not swapped.is_right("ambiguous", "refund") and not swapped.is_right("supported", "balance")
    assert confirmed.is_right("supported", "refund") and not confirmed.is_right("ambiguous", "refund")


def test_canaries_are_all_swapped_when_the_confident_rows_on_hand_balance_them() -> None:
    ids, labels, own = _rows()
    all_swapped = choose_canaries(ids, labels, own, labels, set(), 12, seed=4, on_hand=(0, 12))
    assert len(all_swapped) == 12 and all(c.kind == "swapped" for c in all_swapped)
    some = choose_canaries(ids, labels, own, labels, set(), 12, seed=4, on_hand=(0, 4))
    assert sum(c.kind == "swapped" for c in some) == 8  # 8 swapped against 4 + 4 confirmed
    # the rows chosen do not depend on the split
    assert [c.row_id for c in some] == [c.row_id for c in all_swapped]


@pytest.mark.parametrize(("n", "swapped", "confirmed", "expected"),
                         [(18, 0, 0, 9), (17, 0, 0, 9), (18, 0, 23, 18), (18, 0, 10, 14), (10, 0, 4, 7),
                          (18, 18, 40, 18), (18, 18, 12, 6), (18, 30, 10, 0), (0, 0, 5, 0)])
def test_swapped_share_evens_the_two_kinds(n: int, swapped: int, confirmed: int, expected: int) -> None:
    assert swapped_share(n, swapped, confirmed) == expected


def test_mover_interval_of_the_balanced_accuracy_matches_the_hand_computation() -> None:
    """14 of 18 swapped, 20 of 23 confirmed: theta = (14/18 + 20/23) / 2; Newcombe's MOVER bounds from
    the two Wilson intervals with weights 1/2."""
    (l1, u1), (l2, u2) = wilson_by_hand(14, 18), wilson_by_hand(20, 23)
    p1, p2 = 14 / 18, 20 / 23
    theta = (p1 + p2) / 2
    low = theta - math.sqrt((0.5 * (p1 - l1)) ** 2 + (0.5 * (p2 - l2)) ** 2)
    high = theta + math.sqrt((0.5 * (u1 - p1)) ** 2 + (0.5 * (u2 - p2)) ** 2)
    got = mover_sum([(14, 18), (20, 23)], [0.5, 0.5])
    assert got == pytest.approx((theta, low, high), abs=1e-9)
    assert (round(theta, 4), round(low, 4), round(high, 4)) == (0.8237, 0.6743, 0.9023)  # by hand, to 4 places
    # one part: the plain Wilson interval
    assert mover_sum([(7, 10)], [1.0]) == pytest.approx((0.7, *wilson_by_hand(7, 10)), abs=1e-9)
    # bounds stay in [0, 1]
    top = mover_sum([(18, 18), (40, 40)], [0.5, 0.5])
    assert top[0] == 1.0 and top[2] == 1.0 and 0.9 < top[1] < 1.0


def _answers(kind: str, n: int, right: int) -> list[tuple[str, bool]]:
    good, bad = ("contradicted", "supported") if kind == "swapped" else ("supported", "ambiguous")
    return [(good, True)] * right + [(bad, False)] * (n - right)


def test_the_accuracy_is_balanced_not_pooled() -> None:
    cal = calibrate(_answers("swapped", 18, 9), _answers("confirmed", 40, 40), min_low=0.5, canaries=18,
                    from_sample=30, from_followups=10)
    assert cal.accuracy == 0.75  # (9/18 + 40/40) / 2; pooled it would be 49/58 = 0.84
    low, high = mover_sum([(9, 18), (40, 40)], [0.5, 0.5])[1:]
    assert (cal.low, cal.high) == (round(low, 4), round(high, 4))
    assert cal.swapped == 18 and cal.swapped_correct == 9 and cal.confirmed == 40 and cal.confirmed_correct == 40
    assert cal.confirmed_sample == 30 and cal.confirmed_followup == 10 and cal.confirmed_canaries == 0
    assert cal.swapped_low == round(wilson_by_hand(9, 18)[0], 4) and cal.confirmed_high == 1.0
    assert cal.baseline == 0.5 and cal.informative is True and cal.verdict.startswith("informative: balanced")


def test_a_judge_that_always_says_supported_is_not_informative_however_many_free_rows() -> None:
    """Pooled, 60 confident rows called supported and 18 swapped canaries missed would score 0.77."""
    cal = calibrate(_answers("swapped", 18, 0), _answers("confirmed", 60, 60), min_low=0.5, canaries=18,
                    from_sample=60)
    assert cal.accuracy == 0.5 and cal.baseline == 0.5 and cal.informative is False
    assert "NOT informative" in cal.verdict and "same answer" in cal.verdict
    assert cal.swapped_flagged == 0 and cal.confirmed_correct == 60
    # one swapped canary caught: above the baseline, but the lower bound says it is no better than one
    one = calibrate(_answers("swapped", 18, 1), _answers("confirmed", 60, 60), min_low=0.5, from_sample=60)
    assert one.accuracy is not None and one.accuracy > 0.5 and one.low is not None and one.low < 0.5
    assert one.informative is False and "lower bound" in one.verdict


def test_a_good_judge_is_informative_and_a_noisy_one_is_judged_by_its_lower_bound() -> None:
    good = calibrate(_answers("swapped", 10, 10), _answers("confirmed", 10, 10), min_low=0.5, canaries=20)
    assert good.accuracy == 1.0 and good.informative is True and good.confirmed_canaries == 10
    few = calibrate(_answers("swapped", 3, 2), _answers("confirmed", 3, 2), min_low=0.5, canaries=6)
    assert few.accuracy is not None and few.accuracy > few.baseline and few.low is not None and few.low < 0.5
    assert few.informative is False and "lower bound" in few.verdict


def test_calibration_needs_both_kinds() -> None:
    assert calibrate([], [], min_low=0.5).informative is None
    assert "needs the out-of-fold classifier" in calibrate([], [], min_low=0.5).verdict
    assert "no canary was judged" in calibrate([], [], min_low=0.5, failed=3).verdict
    free_only = calibrate([], _answers("confirmed", 30, 30), min_low=0.5, from_sample=30)
    assert free_only.informative is None and "no swapped canary" in free_only.verdict
    swapped_only = calibrate(_answers("swapped", 10, 10), [], min_low=0.5, canaries=10)
    assert swapped_only.informative is False and swapped_only.baseline == 1.0


def test_error_estimate_per_label_and_stratified_overall() -> None:
    sample = {"a": [True] + [False] * 9, "b": [False] * 10, "c": [True, True] + [False] * 3}
    sizes = {"a": 300, "b": 100, "c": 5}
    est = error_estimate(sample, sizes)
    by = {e.label: e for e in est.per_label}
    assert by["a"].rate == 0.1 and by["a"].low == wilson(1, 10).low and by["c"].errors == 2
    expected = (300 * 0.1 + 100 * 0 + 5 * 0.4) / 405
    assert est.rate == pytest.approx(expected, abs=1e-4) and est.sampled == 25 and est.errors == 3
    assert est.low is not None and est.high is not None and est.low <= est.rate <= est.high
    one = error_estimate({"a": [True] * 3 + [False] * 17}, {"a": 500})
    assert (one.low, one.high) == (wilson(3, 20).low, wilson(3, 20).high)  # one label: the plain Wilson interval
    none = error_estimate({"a": [False] * 30, "b": [False] * 30}, {"a": 100, "b": 100})
    assert none.rate == 0.0 and none.low == 0.0 and none.high is not None and 0.03 < none.high < 0.1  # not [0, 0]


def test_two_judges_kappa_equals_sklearn_overall_and_one_vs_rest() -> None:
    rng = np.random.default_rng(0)
    labels = ["a", "b", "c"]
    first = [str(x) for x in rng.choice([*labels, "ambiguous"], size=60)]
    second = [x if rng.random() < 0.7 else str(rng.choice(labels)) for x in first]
    ag = agreement(first, second, labels, second_judge="m2",
                   disagreements=[Disagreement(str(i), "a", "supported", "a", "contradicted", "b") for i in range(3)])
    assert ag.kappa == pytest.approx(cohen_kappa_score(first, second), abs=1e-4)
    for lab in ag.per_label:
        assert lab.kappa == pytest.approx(cohen_kappa_score([x == lab.label for x in first],
                                                            [y == lab.label for y in second]), abs=1e-4)
    assert {p.label for p in ag.per_label} == {*labels, "ambiguous"}
    assert ag.rows == 60 and ag.agreed == sum(x == y for x, y in zip(first, second, strict=True))
    assert ag.disagreements_total == 3
    assert judge_answer("supported", "b", "a") == "a" and judge_answer("contradicted", "b", "a") == "b"
    assert judge_answer("ambiguous", "b", "a") == "ambiguous"
