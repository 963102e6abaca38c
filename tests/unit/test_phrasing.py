"""repeated_opening / repeated_ending: planted openings and sign-offs are found (with the right label
and field), and a varied clean set raises nothing."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pandas as pd

from audit_agent.checks import REGISTRY
from audit_agent.checks.phrasing import ending_keys
from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.findings import Severity

repeated_ending = REGISTRY["repeated_ending"].run
repeated_opening = REGISTRY["repeated_opening"].run

LABELS = ["refund", "shipping", "account", "technical"]
_TOPIC = {
    "refund": ["money back for the blender", "reimbursement for the broken lamp", "refund of the duplicate charge",
               "credit for the cancelled booking", "return of the faulty kettle", "payback on the jacket"],
    "shipping": ["parcel that never came", "delivery of the sofa", "package stuck in transit",
                 "courier who lost the box", "tracking for the shipment", "late arrival of the chairs"],
    "account": ["password reset link", "login on the new laptop", "profile email change",
                "two-factor code problem", "locked user account", "username update"],
    "technical": ["app crashing at startup", "error when uploading photos", "sync failing overnight",
                  "screen freezing in settings", "bluetooth pairing bug", "slow loading dashboard"],
}
_SUBJECTS = ["Yesterday", "Last week", "Somehow", "Honestly", "Again", "Today", "Recently", "Sadly", "Apparently",
             "Suddenly"]
_VERBS = ["I noticed a problem with the", "my brother asked about the", "we kept waiting on the",
          "someone mentioned the", "our office flagged the", "a friend warned me about the",
          "the chat bot ignored the", "nobody explained the"]
_SECOND = ["Could you check", "What should I do", "Is this expected", "Who handles this", "Can someone look",
           "Where do I start", "How long will it take", "Any idea why"]
_SECOND_END = ["on your side?", "next?", "at all?", "for me?", "soon?", "here?", "today?", "again?"]


def clean_rows(n_per_label: int = 50, seed: int = 0) -> pd.DataFrame:
    """Varied rows: openings, endings and phrases are spread evenly over labels (no shortcut)."""
    rng = random.Random(seed)
    rows = []
    for label in LABELS:
        combos = list(itertools.product(_SUBJECTS, _VERBS, _TOPIC[label]))
        rng.shuffle(combos)
        endings = list(itertools.product(_SECOND, _SECOND_END))
        rng.shuffle(endings)
        for k, (subject, verb, topic) in enumerate(combos[:n_per_label]):
            first = f"{subject} {verb} {topic}."
            second = " ".join(endings[k % len(endings)])
            rows.append({"text": f"{first} {second}" if k % 2 else first, "label": label})
    rng.shuffle(rows)
    return pd.DataFrame(rows)


def make_ctx(frame: pd.DataFrame, kind: str = "classification", **checks: object) -> AuditContext:
    """An AuditContext over `frame` (columns text, label) with ids r0, r1, ..."""
    frame = frame.reset_index(drop=True)
    data = pd.DataFrame({"id": [f"r{i}" for i in range(len(frame))], "text": frame["text"].astype(str),
                         "label": frame["label"]})
    config = AuditConfig.model_validate({"checks": checks})
    return AuditContext(train=Dataset(path=Path("train.csv"), frame=data, kind=kind), config=config)  # type: ignore[arg-type]


def test_clean_data_raises_nothing() -> None:
    ctx = make_ctx(clean_rows())
    assert repeated_opening(ctx) == []
    assert repeated_ending(ctx) == []


def test_planted_opening_found_with_its_label() -> None:
    frame = clean_rows()
    refund = frame.index[frame["label"] == "refund"][:20]  # 40% of refund rows
    frame.loc[refund, "text"] = "Hi there, I hope you're doing well. " + frame.loc[refund, "text"]
    findings = repeated_opening(make_ctx(frame))
    assert len(findings) == 1
    f = findings[0]
    assert f.evidence["phrase"].startswith("hi there i hope you're")
    assert len(f.evidence["phrase"].split()) >= 5  # grown past the 4-word key
    assert f.evidence["count"] == 20
    assert f.evidence["top_label"] == "refund"
    assert f.evidence["per_label"]["refund"]["share"] == 0.4
    assert f.evidence["label_concentration"] == 1.0
    assert f.labels == ["refund"]
    assert f.severity == Severity.HIGH
    assert {str(r) for r in f.rows} == {f"r{i}" for i in refund}
    assert f.evidence["field"] == "text"


def test_planted_signoff_found_overall() -> None:
    frame = clean_rows()
    signed = frame.index[::3]  # a third of all rows, spread over labels
    frame.loc[signed, "text"] = frame.loc[signed, "text"] + " Thanks in advance for your help!"
    findings = repeated_ending(make_ctx(frame))
    assert len(findings) == 1
    f = findings[0]
    assert f.evidence["phrase"] == "thanks in advance for your help"
    assert f.evidence["count"] == len(signed)
    assert f.severity == Severity.HIGH  # >= 30% of the data
    assert f.evidence["share"] >= 0.3


def test_medium_severity_between_ten_and_thirty_percent() -> None:
    frame = clean_rows()
    signed = frame.index[:30]  # 15% of the data
    frame.loc[signed, "text"] = frame.loc[signed, "text"] + " Please advise."
    findings = repeated_ending(make_ctx(frame))
    assert [f.evidence["phrase"] for f in findings] == ["please advise"]
    assert findings[0].evidence["share"] == 0.15
    assert findings[0].evidence["top_label_share"] < 0.3  # no label reaches the high bar either
    assert findings[0].severity == Severity.MEDIUM


def test_signoff_on_its_own_line_with_a_name_is_one_ending() -> None:
    keys = ending_keys(["Where is it?\nThanks,\n<NAME>", "Single sentence only"])
    assert keys == ["thanks <name>", None]


def test_generation_targets_are_checked_as_target_field() -> None:
    frame = clean_rows()
    replies = [f"Thanks for reaching out! Your case {i} about item {i % 7} is noted. "
               f"Please let us know if you need further assistance." for i in range(len(frame))]
    frame["label"] = replies
    ctx = make_ctx(frame, kind="generation")
    openings = repeated_opening(ctx)
    endings = repeated_ending(ctx)
    assert [f.evidence["field"] for f in openings] == ["target"]
    assert openings[0].evidence["phrase"].startswith("thanks for reaching out")
    assert [f.evidence["field"] for f in endings] == ["target"]
    assert endings[0].evidence["phrase"] == "please let us know if you need further assistance"
    assert endings[0].severity == Severity.HIGH


def test_threshold_is_configurable() -> None:
    frame = clean_rows()
    signed = frame.index[:30]
    frame.loc[signed, "text"] = frame.loc[signed, "text"] + " Please advise."
    assert repeated_ending(make_ctx(frame, repeated_share=0.5)) == []


def test_plain_label_specific_stem_is_low_but_reported() -> None:
    frame = clean_rows()
    rows = frame.index[frame["label"] == "technical"][:10]  # 20% of one label, 5% overall, no formula
    frame.loc[rows, "text"] = "Do I need a new phone? " + frame.loc[rows, "text"]
    findings = repeated_opening(make_ctx(frame))
    assert len(findings) == 1
    assert findings[0].evidence["top_label"] == "technical"
    assert findings[0].evidence["formulaic"] is False
    assert findings[0].severity == Severity.LOW


def test_topic_word_matching_uses_prefixes() -> None:
    from audit_agent.checks.phrasing import is_formulaic, is_topical

    assert is_topical("what is the minimum payment", "min_payment")
    assert is_topical("is there a limit", "top_up_limits")
    assert not is_topical("i hope you are well", "top_up_limits")
    assert is_formulaic("i would like to ask") and not is_formulaic("do i need a")
