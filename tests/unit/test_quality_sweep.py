"""bench/quality_sweep.py: the threshold is chosen on one dataset's runs only, and scored on the other's."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from quality_sweep import Scored, at_threshold, choose, n_labels, prf, rule_table, sweep_table


def _run(dataset: str, seed: int, errors_above: float, n: int = 1000, flips: int = 50) -> Scored:
    """Flipped rows score in [errors_above, 1); clean rows below 0.95 except 20 that score 0.985."""
    rng = np.random.default_rng(seed)
    truth = np.zeros(n, dtype=bool)
    truth[:flips] = True
    score = rng.uniform(0.0, 0.95, n)
    score[:flips] = rng.uniform(errors_above, 1.0, flips)
    score[flips:flips + 20] = 0.985
    cl_flags = np.zeros(n, dtype=bool)
    cl_flags[: flips + 50] = True
    return Scored(dataset, 0.05, seed, score, truth, truth & (np.arange(n) % 2 == 0), cl_flags,
                  np.arange(n), 1.0, 0.9)


def test_prf() -> None:
    flags = np.array([True, True, False, False])
    truth = np.array([True, False, True, False])
    p, r, f1, f05 = prf(flags, truth)
    assert (p, r, f1, f05) == (0.5, 0.5, 0.5, 0.5)
    assert prf(np.zeros(4, bool), truth) == (0.0, 0.0, 0.0, 0.0)


def test_choice_depends_only_on_the_chosen_dataset() -> None:
    # on "a" the errors score >= 0.99 and 20 clean rows sit at 0.985: the best cut-off is above 0.985;
    # on "b" the errors spread down to 0.96, so a lower cut-off is best there
    runs = [_run("a", s, 0.99) for s in range(2)] + [_run("b", s, 0.96) for s in range(2)]
    table = sweep_table(runs, grid=(0.95, 0.98, 0.9875, 0.99))
    assert choose(table, "a", "F1") in (0.9875, 0.99)
    assert choose(table, "b", "F1") == 0.95
    only_a = sweep_table([r for r in runs if r.dataset == "a"], grid=(0.95, 0.98, 0.9875, 0.99))
    assert choose(only_a, "a", "F1") == choose(table, "a", "F1")


def test_at_threshold_reports_both_rankings() -> None:
    frame = at_threshold([_run("a", 0, 0.99)], "a", 0.9875)
    row = frame.iloc[0]
    assert row.P == 1.0 and row.R == 1.0 and row.flagged == 50
    assert row["P@k"] == 1.0  # our ranking puts the 50 errors first
    assert row["cl_P@k"] == 1.0 and row.cl_P == 0.5 and row.cl_R == 1.0


def test_label_count_rule_uses_each_runs_label_count() -> None:
    assert (n_labels("banking77"), n_labels("clinc150"), n_labels("banking77:10")) == (77, 150, 10)
    small, large = _run("banking77:10", 0, 0.96), _run("clinc150", 0, 0.96)
    rules = rule_table([small, large], grid=(0.5,))
    # c = 0.5: 10 labels -> threshold 0.95 (every error flagged), 150 labels -> 0.99667 (most missed)
    assert rules[rules.dataset == "banking77:10"].R.iloc[0] == 1.0
    assert rules[rules.dataset == "clinc150"].R.iloc[0] < 0.2
