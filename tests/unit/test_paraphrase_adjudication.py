"""bench/paraphrase_conflicts.py --adjudicated: original pairs matched to the readers' decisions by the
unordered pair of train.csv positions, not by the planted frame's positions."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from paraphrase_conflicts import Planted, adjudicated, load_adjudication, score


def _planted() -> Planted:
    # four base rows that sit at train.csv rows 3, 7, 8, 12 (as after --clean-base), then one planted row
    frame = pd.DataFrame({"id": [str(i) for i in range(5)], "text": list("abcde"),
                          "label": ["x", "y", "z", "w", "y"]})
    return Planted(frame, np.zeros((5, 2)), [(4, 0)], {4: "x"}, {4: "random"}, removed=9,
                   base_rows=(3, 7, 8, 12))


def test_original_pairs_match_by_unordered_train_rows(tmp_path: Path) -> None:
    path = tmp_path / "adj.csv"
    path.write_text("train_row_a,train_row_b,label_a,label_b,reader_a,reader_b\n"
                    "8,3,z,x,conflict,conflict\n"        # frame rows (0, 2), given the other way round
                    "7,12,y,w,conflict,unclear\n"        # frame rows (1, 3): split decision
                    "0,2,x,z,different,different\n"      # frame positions of the first pair: must not be used
                    "1,3,y,w,different,conflict\n")      # frame positions of the second pair
    adj = load_adjudication(path)
    assert adj.conflict == {frozenset((3, 8))}
    assert adj.labels[frozenset((3, 8))] == {"x", "z"}

    p = _planted()
    s = score([(0, 2), (2, 0), (1, 3), (4, 0)], None, p)
    assert (s.pairs, s.planted, s.original) == (3, 1, 2)
    assert s.originals == {frozenset((3, 8)), frozenset((7, 12))}
    confirmed, unjudged, prec = adjudicated(s, adj)
    assert (confirmed, unjudged) == (1, 0)
    assert prec == (1 + 0 + 1) / 3
    assert s.precision_all == 1 / 3


def test_unadjudicated_original_pairs_count_as_wrong(tmp_path: Path) -> None:
    path = tmp_path / "adj.csv"
    path.write_text("train_row_a,train_row_b,label_a,label_b,reader_a,reader_b\n3,8,x,z,conflict,conflict\n")
    s = score([(0, 2), (1, 3)], None, _planted())
    confirmed, unjudged, prec = adjudicated(s, load_adjudication(path))
    assert (confirmed, unjudged, prec) == (1, 1, 0.5)
