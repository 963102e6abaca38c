"""bench/planting.py: seeded, exact-rate label noise, half of it to the confusable class."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from planting import most_confused, plant_label_noise


def test_noise_rate_kinds_and_seed() -> None:
    labels = np.array([c for c in "abcd" for _ in range(250)], dtype=object)
    confusable = {"a": "b", "b": "a", "c": "d", "d": "c"}
    planted = plant_label_noise(labels, 0.1, confusable, seed=3)
    assert planted.count == 100
    assert (planted.labels[~planted.flipped] == labels[~planted.flipped]).all()
    conf = planted.kind == "confusable"
    assert conf.sum() == 50 and (planted.kind == "random").sum() == 50
    assert all(confusable[o] == n for o, n in zip(labels[conf], planted.labels[conf], strict=True))
    again = plant_label_noise(labels, 0.1, confusable, seed=3)
    assert (again.labels == planted.labels).all()
    other = plant_label_noise(labels, 0.1, confusable, seed=4)
    assert (other.labels != planted.labels).any()


def test_most_confused_picks_the_symmetric_top_pair() -> None:
    given = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    predicted = np.array([0, 1, 1, 1, 0, 2, 2, 2])
    target = most_confused(given, predicted, 3)
    assert target[0] == 1 and target[1] == 0
    assert target[2] != 2
