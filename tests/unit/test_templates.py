"""Slot masking and template_frame: a planted frame (only names/ids change) is found with its slots,
labels and example values; varied data and plain duplicates raise nothing."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from audit_agent.checks import REGISTRY
from audit_agent.features.slots import as_frame, mask, mask_many, normalize_many, slot_values
from audit_agent.findings import Severity
from tests.unit.test_phrasing import clean_rows, make_ctx

template_frame = REGISTRY["template_frame"].run

FIRST = ["Sarah", "Tom", "Priya", "James", "Olivia", "Kenji", "Maria", "Liam", "Emma", "Omar"]
LAST = ["Johnson", "Baker", "Nguyen", "Okafor", "Schmidt", "Rossi", "Kowalski", "Silva"]


@pytest.mark.parametrize(("text", "masked"), [
    ("Hello, my name is Sarah Johnson and my order ORD-48213 arrived damaged.",
     "Hello, my name is <NAME> and my order <ID> arrived damaged."),
    ("Ticket #12345: write to bob.smith@example.com or see https://x.com/a?b=1",
     "Ticket <ID>: write to <EMAIL> or see <URL>"),
    ("I paid $45.99 on March 3rd, 2024 at 10:30 am for my new Galaxy S21 Ultra.",
     "I paid <MONEY> on <DATE> at <TIME> for my new <PRODUCT>."),
    ("It came 2024-01-05, three days late, after 3 weeks.", "It came <DATE>, three days late, after <NUM> weeks."),
    ("I was charged 20 USD twice on Monday.", "I was charged <MONEY> twice on <DATE>."),
    ("What can I do if my card still hasn't arrived?", "What can I do if my card still hasn't arrived?"),
])
def test_mask(text: str, masked: str) -> None:
    assert mask(text) == masked


def test_mask_many_keeps_rows_aligned_and_line_breaks_inside_rows() -> None:
    texts = ["first 12345\nsecond line", "", "May I ask, is 5\nUSD ok?", "plain"]
    out = mask_many(texts)
    assert len(out) == 4
    assert out[1] == "" and out[3] == "plain"
    assert as_frame(out[0]) == "first {ID}\nsecond line"
    assert normalize_many(out) == ["first <id> second line", "", "may i ask is <money> ok", "plain"]


def test_slot_values() -> None:
    values = slot_values("Hi, I'm Tom Baker, order ORD-1 and ticket #77 from 2024-02-03.")
    assert values["NAME"] == ["Tom Baker"]
    assert values["ID"] == ["ORD-1", "#77"]
    assert values["DATE"] == ["2024-02-03"]


def _with_frame(frame: pd.DataFrame, label: str, n: int, seed: int = 0, verb: str = "arrived") -> pd.DataFrame:
    rng = random.Random(seed)
    rows = frame.index[frame["label"] == label][:n]
    frame.loc[rows, "text"] = [
        f"Hello, my name is {rng.choice(FIRST)} {rng.choice(LAST)} and my order ORD-{rng.randrange(10000, 99999)} "
        f"{verb} damaged." for _ in rows]
    return frame


def test_clean_data_raises_nothing() -> None:
    assert template_frame(make_ctx(clean_rows())) == []


def test_exact_duplicates_are_not_a_frame() -> None:
    frame = clean_rows()
    frame.loc[frame.index[:12], "text"] = "My order ORD-11111 arrived damaged."
    assert template_frame(make_ctx(frame)) == []


def test_planted_frame_found() -> None:
    frame = _with_frame(clean_rows(), "shipping", 20)
    findings = template_frame(make_ctx(frame))
    assert len(findings) == 1
    f = findings[0]
    assert f.evidence["frame"] == "Hello, my name is {NAME} and my order {ID} arrived damaged."
    assert f.evidence["count"] == 20
    assert {k: v.model_dump() for k, v in f.evidence["per_label"].items()} == {
        "shipping": {"count": 20, "share": 0.4, "label_rows": 50}}
    assert f.labels == ["shipping"]
    assert f.severity == Severity.HIGH  # 10% of the data, 40% of its label
    assert set(f.evidence["slot_values"]) == {"NAME", "ID"}
    assert all(v.startswith("ORD-") for v in f.evidence["slot_values"]["ID"])
    assert f.evidence["distinct_texts"] > 1


def test_small_frame_below_min_rows_ignored_and_config_respected() -> None:
    frame = _with_frame(clean_rows(), "shipping", 4)
    assert template_frame(make_ctx(frame)) == []
    assert len(template_frame(make_ctx(frame, template_min_rows=3))) == 1


def test_near_identical_variants_join_the_frame() -> None:
    frame = _with_frame(clean_rows(), "shipping", 30)
    frame = _with_frame(frame, "refund", 10, seed=1, verb="arrived badly")
    findings = template_frame(make_ctx(frame))
    assert findings, "the frame must be found"
    top = max(findings, key=lambda f: f.evidence["count"])
    assert top.evidence["frame"] == "Hello, my name is {NAME} and my order {ID} arrived damaged."
    assert top.evidence["count"] == 40  # 30 exact + 10 with one extra word
    assert top.evidence["n_variants"] == 2
    assert set(top.labels) == {"shipping", "refund"}
