"""Paraphrase batches: every verification rule alone, row selection, the job with the fake LLM,
and merging accepted rows into a new dataset file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel

from audit_agent.config import AuditConfig
from audit_agent.dataset import AuditContext, Dataset
from audit_agent.errors import InputError
from audit_agent.findings import Finding, Severity
from audit_agent.io.loader import load_dataset
from audit_agent.paraphrase_job import (
    ParaphraseSettings,
    accept_paraphrases,
    run_paraphrase,
    select_rows,
    template_frames,
)
from audit_agent.verify.paraphrase import (
    check_judge,
    check_keeps_label,
    check_messier,
    check_no_template_frame,
    check_not_near,
    check_not_near_existing,
    check_well_formed,
)
from tests.fakes import FakeLLM

SOURCE = "Hello, I would like to request a refund for my order number 7, please. Thank you."
LABELS = ["card_arrival", "charge_dispute", "refund_request"]
MESSY = {
    "refund_request": ["want my money back for tht order", "money back pls", "order never came give it back"],
    "charge_dispute": ["why did u take money twice??", "charged 2x wtf", "there are two charges on my statement"],
    "card_arrival": ["still no card", "card hasnt come yet", "been waiting weeks for the card"],
}


def polished_frame(n: int = 12) -> pd.DataFrame:
    rows = []
    for i in range(n):
        rows.append((f"Hello, I would like to request a refund for my order number {i}, please. Thank you.",
                     "refund_request"))
        rows.append((f"Could you please explain why my card was charged twice on {i} March? Thank you.",
                     "charge_dispute"))
        rows.append((f"Hello, could you please tell me when my new card {i} will arrive? Thank you.", "card_arrival"))
    rows += [("refund pls", "refund_request"), ("card??", "card_arrival"), ("charged twice", "charge_dispute")]
    frame = pd.DataFrame(rows, columns=["text", "label"])
    frame.insert(0, "id", [str(i) for i in range(len(frame))])
    return frame


def make_ctx(tmp_path: Path, frame: pd.DataFrame | None = None) -> AuditContext:
    frame = polished_frame() if frame is None else frame
    path = tmp_path / "data.csv"
    frame[["text", "label"]].to_csv(path, index=False)
    return AuditContext(train=Dataset(path=path, frame=frame), config=AuditConfig())


def messy_responder(_p: str, v: dict[str, Any], _s: type[BaseModel]) -> dict[str, Any]:
    label = v["label_words"].replace(" ", "_")
    k = next(i for i, key in enumerate(("all lowercase", "clipped", "irritated")) if key in v["style"])
    return {"rewrite": MESSY[label][k]}


# ---------------------------------------------------------------- rules


@pytest.mark.parametrize(("candidate", "ok"), [
    ("want my money back for that order", True),
    ("", False),
    ("?!", False),
    ("Here is the rewrite: money back pls", False),
    ('{"rewrite": "money back"}', False),
    ("money back\nand also a second line", False),
    ("money back " * 40, False),
    ("I'm sorry, I can't help you with your refund.", False),
    ("Hello, I'm here to help with your travel plans.", False),
    ("is my rome flight tmrw delayed or not", False),  # the prompt's worked example
])
def test_check_well_formed(candidate: str, ok: bool) -> None:
    assert check_well_formed(candidate, SOURCE)[0] is ok


def test_check_keeps_label() -> None:
    classes = LABELS
    assert check_keeps_label("refund_request", np.array([0.1, 0.1, 0.8]), classes)[0]
    assert check_keeps_label("refund_request", np.array([0.1, 0.5, 0.4]), classes)[0]  # >= half the top
    ok, detail = check_keeps_label("refund_request", np.array([0.1, 0.8, 0.1]), classes)
    assert not ok and "charge_dispute" in detail
    assert not check_keeps_label("unknown", np.array([0.1, 0.8, 0.1]), classes)[0]


def test_check_judge() -> None:
    assert check_judge("yes")[0] and not check_judge("no")[0] and not check_judge(None)[0]


def test_check_messier() -> None:
    assert check_messier(0.95, 0.4)[0]
    assert not check_messier(0.95, 0.9)[0]
    assert not check_messier(0.3, 0.6)[0]


def test_check_not_near() -> None:
    assert not check_not_near("hello i would like to request a refund for my order number 7 please thank you",
                              [SOURCE])[0]  # only case and punctuation changed
    assert not check_not_near("helo i would like to request a refund for my order numbr 7 please thank you",
                              [SOURCE])[0]  # typos alone do not make a new row
    assert check_not_near("want my money back for that order", [SOURCE])[0]
    assert check_not_near("anything", [])[0]


def test_check_not_near_existing() -> None:
    assert check_not_near_existing([])[0]
    assert check_not_near_existing([("3", 0.5)])[0]
    ok, detail = check_not_near_existing([("3", 0.5), ("9", 0.92)])
    assert not ok and "row 9" in detail


def test_check_no_template_frame() -> None:
    assert not check_no_template_frame("hello i would like my money back", SOURCE, [])[0]
    assert not check_no_template_frame("so could you please tell me where it is", "Where is it?",
                                       ["could you please tell me"])[0]
    assert check_no_template_frame("want my money back for that order", SOURCE, ["could you please tell me"])[0]


def test_template_frames_from_findings() -> None:
    fs = [Finding(check="template_frame", severity=Severity.MEDIUM, message="m",
                  evidence={"frame": "could you please", "openings": ["hello i would", 3]}),
          Finding(check="other", severity=Severity.LOW, message="x", evidence={"frame": "ignored"})]
    assert template_frames(fs) == ["could you please", "hello i would"]


# ---------------------------------------------------------------- selection


def test_select_rows_polished_balanced_and_not_doubtful(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    doubtful = Finding(check="conflicting_labels", severity=Severity.HIGH, message="m", rows=["0", "3"])
    rows = select_rows(ctx, [doubtful], 6, ParaphraseSettings())
    assert len(rows) == 6
    assert rows["label"].value_counts().to_dict() == {lab: 2 for lab in LABELS}
    assert not set(rows["id"]) & {"0", "3"}
    assert (rows["polish"] >= 0.6).all()
    assert not set(rows["text"]) & {"refund pls", "card??", "charged twice"}


def test_select_rows_none_when_data_is_messy(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": ["0", "1", "2", "3"], "text": ["refund pls", "card??", "charged twice", "no card"],
                          "label": ["refund_request", "card_arrival", "charge_dispute", "card_arrival"]})
    assert select_rows(make_ctx(tmp_path, frame), [], 10, ParaphraseSettings()).empty


# ---------------------------------------------------------------- the job


def test_run_paraphrase_writes_review_batch(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    llm = FakeLLM(messy_responder)
    result = run_paraphrase(ctx, [], llm, tmp_path / "out", per_row=3, max_rows=6)
    assert result.rows_selected == 6 and result.candidates == 18 and llm.n_calls == 18
    csv = pd.read_csv(result.csv_path, dtype=str, keep_default_na=False)
    lines = [json.loads(line) for line in result.jsonl_path.read_text().splitlines()]
    assert len(csv) == len(lines) == 18
    for col in ("source_id", "source_text", "candidate", "label", "polish_source", "polish_candidate",
                "checks_passed", "checks_failed", "status", "reason"):
        assert col in csv.columns
    assert set(csv["status"]) <= {"pending", "rejected"}
    assert (csv["status"] == "pending").sum() == result.passed
    rejected = csv[csv["status"] == "rejected"]
    assert (rejected["reason"].str.len() > 0).all() and (rejected["checks_failed"].str.len() > 0).all()
    # the second row of a label gets the same scripted rewrites: duplicates of the first row's
    assert rejected["checks_failed"].str.contains("not_near_candidates").sum() >= 6
    passed = csv[csv["status"] == "pending"]
    assert (passed["polish_candidate"].astype(float) < passed["polish_source"].astype(float)).all()
    summary = json.loads(result.summary_path.read_text())
    assert summary["candidates"] == 18 and summary["passed"] == result.passed


def test_run_paraphrase_rejects_copies_and_keeps_failed_calls(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)

    def responder(_p: str, v: dict[str, Any], _s: type[BaseModel]) -> dict[str, Any]:
        return {"rewrite": v["text"].lower().replace(",", "")}  # the source, lowercased: no new row

    llm = FakeLLM(responder, fail=lambda _p, v: "irritated" in v["style"])
    result = run_paraphrase(ctx, [], llm, tmp_path / "out", per_row=3, max_rows=3)
    csv = pd.read_csv(result.csv_path, dtype=str, keep_default_na=False)
    assert result.passed == 0 and (csv["status"] == "rejected").all()
    copies = csv[csv["candidate"] != ""]
    assert copies["checks_failed"].str.contains("not_near_source").all()
    assert copies["checks_failed"].str.contains("not_near_existing").all()
    failed_calls = csv[csv["candidate"] == ""]
    assert len(failed_calls) == 3 and failed_calls["reason"].str.contains("no candidate").all()


def test_run_paraphrase_judge_when_configured(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)

    def responder(p: str, v: dict[str, Any], s: type[BaseModel]) -> dict[str, Any]:
        if v["mode"] == "check":
            return {"keeps_label": "no" if v["label"] == "card_arrival" else "yes"}
        return messy_responder(p, v, s)

    llm = FakeLLM(responder)
    result = run_paraphrase(ctx, [], llm, tmp_path / "out", per_row=3, max_rows=3,
                            settings=ParaphraseSettings(judge=True))
    csv = pd.read_csv(result.csv_path, dtype=str, keep_default_na=False)
    cards = csv[csv["label"] == "card_arrival"]
    assert (cards["status"] == "rejected").all()
    assert cards["checks_failed"].str.contains("judge_keeps_label").any()
    assert (csv[csv["status"] == "pending"]["judge"] == "yes").all() and result.passed > 0


# ---------------------------------------------------------------- accept


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_accept_merges_accepted_rows_into_a_new_file(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    result = run_paraphrase(ctx, [], FakeLLM(messy_responder), tmp_path / "out", per_row=3, max_rows=3)
    review = pd.read_csv(result.csv_path, dtype=str, keep_default_na=False)
    review.loc[review["status"] == "pending", "status"] = "accepted"
    review.loc[review.index[review["status"] == "rejected"][:1], "status"] = "Rejected"
    reviewed = tmp_path / "reviewed.csv"
    review.to_csv(reviewed, index=False)
    before = _digest(ctx.train.path)
    out = accept_paraphrases(reviewed, ctx.train.path, tmp_path / "merged")
    assert _digest(ctx.train.path) == before and out != ctx.train.path
    merged = load_dataset(out)
    n_accepted = int((review["status"] == "accepted").sum())
    assert n_accepted > 0 and len(merged) == len(ctx.train.frame) + n_accepted
    added = merged.frame.tail(n_accepted)
    accepted = review[review["status"] == "accepted"]
    assert added["text"].tolist() == accepted["candidate"].tolist()
    assert added["label"].tolist() == accepted["label"].tolist()


def test_accept_jsonl_dataset(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in
                            [("a b c", "x_label"), ("d e f", "y_label")]))
    review = tmp_path / "review.jsonl"
    review.write_text(json.dumps({"candidate": "g h i", "label": "y_label", "status": "accepted"}) + "\n"
                      + json.dumps({"candidate": "j k", "label": "x_label", "status": "pending"}) + "\n")
    out = accept_paraphrases(review, data, tmp_path / "out")
    assert out.suffix == ".jsonl"
    assert load_dataset(out).frame["text"].tolist() == ["a b c", "d e f", "g h i"]


def test_accept_refuses_bad_reviews(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    none = tmp_path / "none.csv"
    pd.DataFrame({"candidate": ["x y"], "label": ["refund_request"], "status": ["pending"]}).to_csv(none, index=False)
    with pytest.raises(InputError, match="accepted"):
        accept_paraphrases(none, ctx.train.path, tmp_path / "out")
    wrong = tmp_path / "wrong.csv"
    pd.DataFrame({"candidate": ["x y"], "label": ["made_up"], "status": ["accepted"]}).to_csv(wrong, index=False)
    with pytest.raises(InputError, match="made_up"):
        accept_paraphrases(wrong, ctx.train.path, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written for a refused review


def test_check_no_template_frame_with_slots() -> None:
    frame = "Hello, could you please tell me when my new card {NUM} will arrive? Thank you."
    assert not check_no_template_frame("hi could you please tell me when my new card 5 will arrive thank you",
                                       "x", [frame])[0]
    assert check_no_template_frame("when will my card arrive", "x", [frame])[0]
