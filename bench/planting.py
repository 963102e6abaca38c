"""Seeded planting of known problems into clean data, so detection quality can be measured.

Label noise: a share `rate` of rows get a wrong label; half of the flips go to a uniformly random
other class, half to the class most confusable with the true one (from a clean classifier's
confusion matrix), which is the harder, realistic kind of annotation error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PlantedNoise:
    """Noisy labels plus the truth: which rows were flipped and what they were."""

    labels: np.ndarray
    flipped: np.ndarray
    original: np.ndarray
    kind: np.ndarray  # "random" / "confusable" / "" per row

    @property
    def count(self) -> int:
        return int(self.flipped.sum())


def most_confused(given: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """For each class index, the other class its rows are most often predicted as (ties: lowest index;
    a class never confused gets the class that most often steals its neighbours' rows, else its
    successor)."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (given, predicted), 1)
    sym = cm + cm.T
    np.fill_diagonal(sym, -1)
    target = sym.argmax(axis=1)
    none = sym.max(axis=1) <= 0
    target[none] = (np.flatnonzero(none) + 1) % n_classes
    return target


def plant_label_noise(labels: np.ndarray, rate: float, confusable: dict[str, str], *, seed: int) -> PlantedNoise:
    """Flip round(rate * n) labels: half to a random other class, half to `confusable[true label]`."""
    labels = np.asarray(labels, dtype=object)
    n = len(labels)
    rng = np.random.default_rng(seed)
    n_flip = round(rate * n)
    rows = rng.choice(n, size=n_flip, replace=False)
    classes = np.array(sorted(set(labels.tolist())), dtype=object)
    noisy = labels.copy()
    kind = np.full(n, "", dtype=object)
    half = n_flip // 2
    for j, i in enumerate(rows):
        true = labels[i]
        if j < half and confusable.get(true, true) != true:
            noisy[i] = confusable[true]
            kind[i] = "confusable"
        else:
            others = classes[classes != true]
            noisy[i] = others[rng.integers(len(others))]
            kind[i] = "random"
    flipped = noisy != labels
    return PlantedNoise(labels=noisy, flipped=flipped, original=labels, kind=kind)
