"""style_frame: each column measures what its docstring says, on hand-written rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audit_agent.features.style import STYLE_COLUMNS, has_wordfreq, label_words, style_frame, tokens_by_row

ROWS = {
    "short": "refund??",
    "terse": "cant login. code expired. fix pls",
    "indirect": "my card got swallowed by the atm",
    "polished": "Could you please tell me how I can top up my account using a bank transfer? Thank you.",
    "angry": "WHY is my card STILL not here!!!",
    "typos": "I recieve the wrong amuont",
    "clean": "I received the wrong amount.",
    "multi": "how do i cancel my order and also change my pin",
    "acronym": "The ATM kept my card",
    "question": "How do I reset my PIN?",
}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return style_frame(list(ROWS.values())).set_axis(list(ROWS), axis=0)


def test_shape_and_columns(frame):
    assert list(frame.columns) == STYLE_COLUMNS
    assert len(frame) == len(ROWS)


def test_length_and_casing(frame):
    assert frame.loc["short", "is_short"] and not frame.loc["polished", "is_short"]
    assert frame.loc["short", "n_words"] == 1 and frame.loc["short", "n_chars"] == 8
    assert frame.loc["terse", "all_lowercase"] and not frame.loc["angry", "all_lowercase"]
    assert frame.loc["polished", "starts_capitalised"] and not frame.loc["indirect", "starts_capitalised"]


def test_punctuation(frame):
    assert frame.loc["indirect", "no_end_punct"] and frame.loc["indirect", "no_punct"]
    assert not frame.loc["clean", "no_end_punct"] and not frame.loc["short", "no_punct"]


def test_typos(frame):
    assert frame.loc["typos", "has_typo"] and frame.loc["typos", "typo_rate"] == pytest.approx(2 / 5)
    assert frame.loc["clean", "typo_rate"] == 0 and not frame.loc["polished", "has_typo"]


def test_intent_tone_and_request(frame):
    assert frame.loc["multi", "multi_intent"] and frame.loc["short", "multi_intent"]
    assert not frame.loc["question", "multi_intent"]
    assert frame.loc["angry", "caps_words"] == 2 and frame.loc["angry", "emotional"]
    assert frame.loc["acronym", "caps_words"] == 0 and not frame.loc["acronym", "emotional"]
    assert frame.loc["terse", "frustration"] and frame.loc["short", "emotional"]
    assert frame.loc["indirect", "indirect_request"]
    assert not frame.loc["question", "indirect_request"] and not frame.loc["polished", "indirect_request"]
    assert frame.loc["polished", "formal"] and not frame.loc["terse", "formal"]


def test_polish_orders_rows(frame):
    assert frame["polish"].between(0, 1).all()
    assert frame.loc["polished", "polish"] > 0.9
    assert frame.loc["polished", "polish"] > frame.loc["clean", "polish"] > frame.loc["typos", "polish"]
    assert frame.loc["terse", "polish"] < 0.5 and frame.loc["short", "polish"] < 0.5


def test_missing_and_empty_texts():
    out = style_frame(["", None, np.nan, "  Hi there.  "])  # type: ignore[list-item]
    assert out["n_words"].tolist() == [0, 0, 0, 2]
    assert out["n_chars"].tolist() == [0, 0, 0, 9]
    assert not out["is_short"].iloc[:3].any()
    assert style_frame([]).shape == (0, len(STYLE_COLUMNS))


def test_extra_words_are_not_typos():
    assert style_frame(["recieve acount"])["typo_rate"].iloc[0] == 1.0
    assert not style_frame(["recieve acount"], extra_words={"recieve", "acount"})["has_typo"].iloc[0]


def test_helpers():
    assert label_words(["card_arrival", "Top-Up"]) == {"card", "arrival", "top", "up"}
    toks = tokens_by_row(pd.Series(["Hi, there!", "ok"]))
    assert toks.tolist() == ["hi", "there", "ok"] and toks.index.tolist() == [0, 0, 1]


def test_rare_words_are_not_typos_but_misspellings_are():
    assert has_wordfreq(), "wordfreq is a core dependency: its word list must be in use"
    out = style_frame(["The purifier renews itself", "please seperate the adress", "definately wich one"])
    assert out["typo_rate"].tolist() == [0.0, pytest.approx(2 / 4), pytest.approx(2 / 3)]
