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
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from audit_agent.checks.phrasing import RepeatEvidence
from audit_agent.checks.templates import FrameEvidence
from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.errors import InputError
from audit_agent.features.style import style_frame
from audit_agent.findings import Finding, Severity
from audit_agent.io.loader import load_dataset
from audit_agent.jobs.paraphrase import accepted_rows, run_paraphrase
from audit_agent.jobs.paraphrase_select import ParaphraseSettings, select_rows, template_frames
from audit_agent.report.paraphrase_outputs import read_review_file, write_merged, write_review_batch
from audit_agent.tasks.messify import (
    NEIGHBOURS,
    Messified,
    StyleTargets,
    clip_frame,
    messify,
    targets_from_real,
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
from tests.fakes import FakeLLM, evidence

SOURCE = "Hello, I would like to request a refund for my order number 7, please. Thank you."
LABELS = ["card_arrival", "charge_dispute", "refund_request"]
MESSY = {
    "refund_request": ["want my money back for tht order", "money back pls", "order never came give it back"],
    "charge_dispute": ["why did u take money twice??", "charged 2x wtf", "there are two charges on my statement"],
    "card_arrival": ["still no card", "card hasnt come yet", "been waiting weeks for the card"],
}



def run_written(ctx, findings, llm, out: Path, **kwargs):  # type: ignore[no-untyped-def]
    """Run the paraphrase job and write its review batch, as the CLI does."""
    result = run_paraphrase(ctx, findings, llm, **kwargs)
    return result, write_review_batch(result, out)


def accept_paraphrases(review_file: Path, data_path: Path, out_dir: Path) -> Path:
    """`audit-agent paraphrase DATA --accept FILE`: merge the accepted rows into a new copy of DATA."""
    ds = load_dataset(data_path)
    return write_merged(ds, accepted_rows(read_review_file(review_file), review_file, ds), out_dir)

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
    k = next(i for i, key in enumerate(("clipped", "irritated", "do not ask")) if key in v["style"])
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
                  evidence=evidence(FrameEvidence, frame="could you please {NAME}")),
          Finding(check="template_frame", severity=Severity.LOW, message="n",
                  evidence=evidence(FrameEvidence, frame="hello i would")),
          Finding(check="repeated_opening", severity=Severity.LOW, message="x",
                  evidence=evidence(RepeatEvidence, phrase="ignored"))]
    assert template_frames(fs) == ["could you please {NAME}", "hello i would"]


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
    result, paths = run_written(ctx, [], llm, tmp_path / "out", per_row=3, max_rows=6)
    assert result.rows_selected == 6 and llm.n_calls == 18
    assert result.by_origin["llm"]["candidates"] == 18
    # one rule candidate for each slot whose LLM candidate failed, none for the others
    n_llm_failed = 18 - result.by_origin["llm"]["passed"]
    assert 0 < result.by_origin["rule"]["candidates"] <= n_llm_failed
    assert result.candidates == 18 + result.by_origin["rule"]["candidates"]
    csv = pd.read_csv(paths["csv"], dtype=str, keep_default_na=False)
    lines = [json.loads(line) for line in paths["jsonl"].read_text().splitlines()]
    assert len(csv) == len(lines) == result.candidates
    for col in ("source_id", "source_text", "candidate", "label", "polish_source", "polish_candidate",
                "checks_passed", "checks_failed", "status", "reason", "origin", "llm_text", "transforms"):
        assert col in csv.columns
    llm_rows = csv[csv["origin"] == "llm"]
    assert set(llm_rows["llm_text"]) <= {t for texts in MESSY.values() for t in texts}  # the raw reply, kept
    assert (csv[csv["origin"] == "rule"]["llm_text"] == "").all()
    assert set(csv["status"]) <= {"pending", "rejected"}
    assert (csv["status"] == "pending").sum() == result.passed
    rejected = csv[csv["status"] == "rejected"]
    assert (rejected["reason"].str.len() > 0).all() and (rejected["checks_failed"].str.len() > 0).all()
    # each scripted rewrite (messy, on topic, distinct) passes the first time it is proposed; the second
    # row of a label gets the same rewrites again, rejected as duplicates of the first row's and nothing else
    first_time = ~llm_rows["llm_text"].duplicated()
    assert first_time.sum() == 9 and (llm_rows[first_time]["status"] == "pending").all()
    assert (llm_rows[~first_time]["checks_failed"] == "not_near_candidates").all()
    assert result.by_origin["llm"]["passed"] == 9
    passed = csv[csv["status"] == "pending"]
    assert (passed["polish_candidate"].astype(float) < passed["polish_source"].astype(float)).all()
    summary = json.loads(paths["summary"].read_text())
    assert summary["candidates"] == result.candidates and summary["passed"] == result.passed
    assert summary["by_origin"]["llm"]["candidates"] == 18 and "lowercase" in summary["style_targets"]


def test_run_paraphrase_rejects_copies_and_keeps_failed_calls(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)

    def responder(_p: str, v: dict[str, Any], _s: type[BaseModel]) -> dict[str, Any]:
        return {"rewrite": v["text"].lower().replace(",", "")}  # the source, lowercased: no new row

    llm = FakeLLM(responder, fail=lambda _p, v: "irritated" in v["style"])
    result, paths = run_written(ctx, [], llm, tmp_path / "out", per_row=3, max_rows=3)
    csv = pd.read_csv(paths["csv"], dtype=str, keep_default_na=False)
    llm_rows = csv[csv["origin"] == "llm"]
    assert result.by_origin["llm"]["passed"] == 0 and (llm_rows["status"] == "rejected").all()
    copies = llm_rows[llm_rows["candidate"] != ""]
    # messify clips and changes the copy, but the raw LLM text is still a copy: rejected for it
    assert copies["checks_failed"].str.contains("not_near_source").all()
    assert copies["checks_failed"].str.contains("not_near_existing").all()
    assert copies["reason"].str.contains("llm text:").any()
    failed_calls = llm_rows[llm_rows["candidate"] == ""]
    assert len(failed_calls) == 3 and failed_calls["reason"].str.contains("no candidate").all()
    # every failed slot got a rule candidate made from its source, verified like the others
    rules = csv[csv["origin"] == "rule"]
    assert 3 <= len(rules) <= 9 and (rules["checks_passed"] + rules["checks_failed"]).str.contains("messier").all()
    normalised = rules["source_id"] + rules["candidate"].str.lower().str.replace(r"[^a-z0-9 ]", "", regex=True)
    assert normalised.is_unique  # a row's rule candidates are distinct texts
    assert result.passed == (csv["status"] == "pending").sum() == result.by_origin["rule"]["passed"]


def test_run_paraphrase_judge_when_configured(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)

    def responder(p: str, v: dict[str, Any], s: type[BaseModel]) -> dict[str, Any]:
        if v["mode"] == "check":
            return {"keeps_label": "no" if v["label"] == "card_arrival" else "yes"}
        return messy_responder(p, v, s)

    llm = FakeLLM(responder)
    result, paths = run_written(ctx, [], llm, tmp_path / "out", per_row=3, max_rows=3,
                            settings=ParaphraseSettings(judge=True))
    csv = pd.read_csv(paths["csv"], dtype=str, keep_default_na=False)
    cards = csv[csv["label"] == "card_arrival"]
    assert (cards["status"] == "rejected").all()
    assert cards["checks_failed"].str.contains("judge_keeps_label").any()
    assert (csv[csv["status"] == "pending"]["judge"] == "yes").all() and result.passed > 0


# ---------------------------------------------------------------- accept


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_accept_merges_accepted_rows_into_a_new_file(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    _result, paths = run_written(ctx, [], FakeLLM(messy_responder), tmp_path / "out", per_row=3, max_rows=3)
    review = pd.read_csv(paths["csv"], dtype=str, keep_default_na=False)
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


# ---------------------------------------------------------------- messify (real-style surface transforms)

POLISHED = [
    "Hi there, I hope you're doing well. I can't find where my new card is, could you please check? "
    "Thanks in advance for your help!",
    "Hello, I would like to know why my transfer hasn't arrived yet. Thank you very much for your help.",
    "Good morning, please tell me how I can change my PIN. Kind regards, Anna",
    "Could you please explain the fee I was charged for the exchange? Thank you.",
]


def test_clip_frame_removes_greetings_and_sign_offs() -> None:
    out, done = clip_frame(POLISHED[0])
    assert out == "I can't find where my new card is, could you please check?"
    assert done == ["clip_greeting", "clip_sign_off"]
    assert clip_frame(POLISHED[2])[0] == "Please tell me how I can change my PIN."
    assert clip_frame("I want to thank you for the refund")[1] == []  # thanks inside the message stays
    assert clip_frame("Thank you!")[0] == "Thank you!"  # nothing would be left


def test_messify_is_seeded_and_deterministic() -> None:
    targets = StyleTargets(lowercase=0.5, no_end_punct=0.5, no_apostrophe=0.5, abbreviation=0.5, typo_rate=0.2)
    runs = [[messify(t, targets, seed=s, slot=k, slots=3) for t in POLISHED for s in range(10) for k in range(3)]
            for _ in range(2)]
    assert runs[0] == runs[1]
    assert len({m.text for m in runs[0]}) > len(POLISHED) * 5  # seeds and slots give different texts


def test_messify_slots_of_a_row_get_different_draws() -> None:
    targets = StyleTargets(lowercase=1 / 3, no_end_punct=0.0, no_apostrophe=0.0, abbreviation=0.0, typo_rate=0.0)
    for seed in range(50):
        lowered = [messify(POLISHED[1], targets, seed=seed, slot=k, slots=3).text.islower() for k in range(3)]
        assert sum(lowered) == 1  # stratified: exactly one of three slots at a 1/3 share


@pytest.mark.parametrize("share", [0.05, 0.3, 0.8])
def test_messify_applies_the_lowercase_share_on_average(share: float) -> None:
    targets = StyleTargets(lowercase=share, typo_rate=0.0)
    outs = [messify(POLISHED[s % 4], targets, seed=s, slot=s % 3, slots=3) for s in range(2000)]
    observed = np.mean(["lowercase" in m.transforms for m in outs])
    assert abs(observed - share) < 0.04
    assert all(m.text.islower() == ("lowercase" in m.transforms) for m in outs)


def test_messify_typos_follow_the_rate_and_are_keyboard_slips() -> None:
    assert all(not any(t.startswith("typo") for t in messify(p, StyleTargets(typo_rate=0.0), seed=s).transforms)
               for p in POLISHED for s in range(20))
    out = messify("something terrible happened yesterday", StyleTargets(lowercase=0, no_end_punct=0, no_apostrophe=0,
                  abbreviation=0, typo_rate=1.0), seed=3)
    assert out.transforms == ["typo:4"]
    for old, new in zip(["something", "terrible", "happened", "yesterday"], out.text.split(), strict=True):
        assert new[0] == old[0] and len(new) in (len(old), len(old) - 1) and new != old
        if len(new) == len(old):
            i = next(j for j in range(len(old)) if old[j] != new[j])
            assert new[i] in NEIGHBOURS[old[i]]


def test_messify_surface_transforms() -> None:
    every = StyleTargets(lowercase=1, no_end_punct=1, no_apostrophe=1, abbreviation=1, typo_rate=0)
    out = messify(POLISHED[0], every, seed=1)
    assert out.text == "i cant find where my new card is, could u pls check"
    assert out.transforms == ["clip_greeting", "clip_sign_off", "drop_apostrophes", "abbreviate", "lowercase",
                              "drop_end_punct"]
    none = StyleTargets(lowercase=0, no_end_punct=0, no_apostrophe=0, abbreviation=0, typo_rate=0,
                        keep_greeting=1, keep_sign_off=1)
    assert messify(POLISHED[0], none, seed=1) == Messified(POLISHED[0], [])
    assert "please" not in messify(POLISHED[1], none, seed=1, core=1).text.lower()
    assert "I want to know" in messify(POLISHED[1], none, seed=1, core=1).text


@given(st.lists(st.sampled_from(["card", "cart", "you", "please", "top", "tip", "up", "us", "arrival", "arival",
                                 "refund", "refnd", "the", "when", "will", "my", "thanks", "I'm", "can't"]),
                min_size=2, max_size=12),
       st.integers(0, 10_000))
@settings(max_examples=150, deadline=None)
def test_messify_never_introduces_the_label_word(words: list[str], seed: int) -> None:
    text = " ".join(words)
    avoid = ["card", "arrival", "top", "up", "u", "refund"]
    wild = StyleTargets(lowercase=1, no_end_punct=1, no_apostrophe=1, abbreviation=1, typo_rate=1.0)
    out = messify(text, wild, seed=seed, avoid=avoid).text.lower()
    for w in avoid:
        assert out.split().count(w) <= text.lower().split().count(w)


def test_targets_from_real_measures_the_batch() -> None:
    real = (["my card hasnt come", "why was i charged twice", "dont see my refund"] * 10
            + ["Where is my card?", "I can't log in.", "Please send a new PIN, thanks.", "Hi, card stuck"] * 5)
    targets = targets_from_real(real, style_frame(real))
    assert targets.lowercase == pytest.approx(30 / 50)
    assert targets.no_end_punct == pytest.approx(35 / 50)
    assert targets.no_apostrophe == pytest.approx(20 / 25)  # 20 "hasnt"/"dont" vs 5 "can't"
    assert targets.keep_greeting == pytest.approx(5 / 50)
    assert targets.source.startswith("real batch")
    assert targets_from_real([]) == StyleTargets()


def test_rule_fallback_for_unusable_llm_replies(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    llm = FakeLLM.constant({"rewrite": "I'm sorry, I can't help you with that."})
    result, paths = run_written(ctx, [], llm, tmp_path / "out", per_row=3, max_rows=3)
    csv = pd.read_csv(paths["csv"], dtype=str, keep_default_na=False)
    llm_rows, rules = csv[csv["origin"] == "llm"], csv[csv["origin"] == "rule"]
    assert (llm_rows["status"] == "rejected").all() and llm_rows["checks_failed"].str.contains("well_formed").all()
    assert 3 <= len(rules) <= 9 and rules["candidate_id"].str.contains("-r").all()
    assert result.by_origin["rule"]["passed"] > 0
    passed = rules[rules["status"] == "pending"]
    assert passed["transforms"].str.contains("clip_greeting|clip_sign_off").all()
    assert (passed["polish_candidate"].astype(float) <= passed["polish_source"].astype(float) - 0.1).all()
    assert not passed["candidate"].str.contains("Thank you|Hello").any()
    assert passed["candidate"].nunique() == len(passed)


def test_messify_off_keeps_the_llm_text(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    result, paths = run_written(ctx, [], FakeLLM(messy_responder), tmp_path / "out", per_row=3, max_rows=3,
                            settings=ParaphraseSettings(messify=False, rule_fallback=False))
    csv = pd.read_csv(paths["csv"], dtype=str, keep_default_na=False)
    assert (csv["origin"] == "llm").all() and (csv["candidate"] == csv["llm_text"]).all()
    assert (csv["transforms"] == "").all() and result.candidates == 9


def test_check_well_formed_agent_voice_without_apostrophes() -> None:
    assert not check_well_formed("im unable to do that for u", SOURCE)[0]
    assert not check_well_formed("sorry i cant help with that", SOURCE)[0]
    assert check_well_formed("cant get my money out", SOURCE)[0]
    assert not check_well_formed("i'm sorry, i didn't have the ability to provide a refund", SOURCE)[0]
    assert not check_well_formed("Sorry for any inconvenience, please try again later", SOURCE)[0]
    assert not check_well_formed("activate your card pls", "Hello, my card needs to be activated.")[0]
    assert check_well_formed("activate my card pls", "Hello, my card needs to be activated.")[0]
    assert check_well_formed("does your card work abroad", "Hello, does the card work abroad?")[0]
