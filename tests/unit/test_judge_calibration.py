"""Calibration canaries (choice, scoring, informative or not), Wilson intervals, the per-label error
estimate and two judges' kappa."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from audit_agent.jobs.judge_canaries import Canary, calibrate, canary_count, choose_canaries
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


def _canaries(n: int) -> list[Canary]:
    return [Canary(f"s{i}", "a", "b", "swapped") if i % 2 == 0 else Canary(f"c{i}", "a", "a", "confirmed")
            for i in range(n)]


def test_a_judge_that_always_says_supported_is_not_informative() -> None:
    cal = calibrate([(c, "supported", c.shown_label) for c in _canaries(20)], min_low=0.4)
    assert cal.accuracy == 0.5 and cal.baseline == 0.5 and cal.informative is False
    assert "NOT informative" in cal.verdict and "same answer" in cal.verdict
    assert cal.swapped_correct == 0 and cal.confirmed_correct == 10


def test_a_good_judge_is_informative_and_a_noisy_one_is_judged_by_its_lower_bound() -> None:
    good = [(c, "contradicted" if c.kind == "swapped" else "supported", c.true_label) for c in _canaries(20)]
    cal = calibrate(good, min_low=0.4)
    assert cal.accuracy == 1.0 and cal.informative is True and cal.low == wilson(20, 20).low
    six = good[:6]  # 3 swapped, 3 confirmed; two swapped ones missed
    few = calibrate([(c, "supported", "b") if i in (0, 2) else (c, v, b) for i, (c, v, b) in enumerate(six)],
                    min_low=0.4)
    assert few.accuracy is not None and few.accuracy > few.baseline and few.low is not None and few.low < 0.4
    assert few.informative is False and "lower bound" in few.verdict
    assert calibrate([], min_low=0.4).informative is None


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
