"""The bundled example dataset: generator and committed files stay in sync; planted traps are real."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = ROOT / "fixtures" / "support"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_support", ROOT / "fixtures" / "make_support.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def planted() -> dict:
    return json.loads((SUPPORT / "planted.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return pd.read_csv(SUPPORT / "train.csv", dtype=str, keep_default_na=False).set_index("id", drop=False)


def test_regenerating_yields_identical_files(tmp_path: Path) -> None:
    files = _generator().generate(tmp_path)
    assert set(files) == {"train.csv", "eval.csv", "real.csv", "guide.md", "chat.jsonl", "alpaca.json",
                          "planted.json"}
    for name in files:
        assert (tmp_path / name).read_bytes() == (SUPPORT / name).read_bytes(), f"{name} is stale: rerun make_support.py"


def test_planted_ids_exist(planted: dict, train: pd.DataFrame) -> None:
    ids = set(train.index)
    referenced: list[str] = []
    for d in planted["exact_duplicate"] + planted["near_duplicate"]:
        referenced += [d["id"], d["of"]]
    for d in planted["label_conflict"]:
        referenced += d["ids"]
    referenced += [d["id"] for d in planted["label_flip"] + planted["ambiguous"]]
    for group in planted["template_frame"] + planted["leak_phrase"] + planted["repeated_signoff"]:
        referenced += group["rows"]
    referenced += planted["repeated_opening"]["rows"] + planted["rare_class"]["rows"]
    assert referenced and set(referenced) <= ids
    eval_ids = set(pd.read_csv(SUPPORT / "eval.csv", dtype=str)["id"])
    for d in planted["eval_contamination"]:
        assert d["id"] in eval_ids and d["train_id"] in ids


def test_duplicates_and_conflicts_are_what_they_claim(planted: dict, train: pd.DataFrame) -> None:
    for d in planted["exact_duplicate"]:
        assert train.at[d["id"], "text"] == train.at[d["of"], "text"]
        assert train.at[d["id"], "label"] == train.at[d["of"], "label"]
    for d in planted["near_duplicate"]:
        assert train.at[d["id"], "text"] != train.at[d["of"], "text"]
        assert train.at[d["id"], "label"] == train.at[d["of"], "label"]
    for d in planted["label_conflict"]:
        a, b = d["ids"]
        assert train.at[a, "label"] != train.at[b, "label"]
        assert {train.at[a, "label"], train.at[b, "label"]} == {"refund_request", "billing_issue"}
        assert abs(len(train.at[a, "text"]) - len(train.at[b, "text"])) <= 6


def test_flips_rare_class_and_cues(planted: dict, train: pd.DataFrame) -> None:
    flips = planted["label_flip"]
    assert 0.03 <= len(flips) / len(train) <= 0.05
    assert all(train.at[d["id"], "label"] == d["given"] != d["true"] for d in flips)
    assert 0 < (train["label"] == "account_compromised").sum() < 10
    for leak in planted["leak_phrase"]:
        carriers = train[train["text"].str.contains(leak["phrase"], regex=False)]
        assert len(carriers) >= 10 and set(carriers["label"]) == {leak["label"]}
    opening = planted["repeated_opening"]
    carriers = train[train["text"].str.startswith(opening["text"])]
    assert set(carriers["label"]) == set(opening["labels"])
    for label in opening["labels"]:
        assert (carriers["label"] == label).sum() / (train["label"] == label).sum() > 0.4
    for frame in planted["template_frame"]:
        pattern = re.escape(frame["frame"])
        for slot in ("NAME", "ORDER_ID", "DATE"):
            pattern = pattern.replace(re.escape("{" + slot + "}"), ".+?")
        assert all(re.fullmatch(pattern, train.at[i, "text"]) for i in frame["rows"])


def test_train_is_polished_and_real_is_messy(train: pd.DataFrame) -> None:
    words = train["text"].str.split().str.len()
    assert words.min() >= 8
    assert train["text"].str.match(r"^[A-Z]").all() and train["text"].str.contains(r"[.!?]$").all()
    real = pd.read_csv(SUPPORT / "real.csv", dtype=str)
    assert real["text"].str.split().str.len().median() < 10 < words.median()
    assert real["text"].str.match(r"^[a-z]").mean() > 0.5


def test_generation_files_share_house_style(planted: dict) -> None:
    chat = [json.loads(line) for line in (SUPPORT / "chat.jsonl").read_text(encoding="utf-8").splitlines()]
    alpaca = json.loads((SUPPORT / "alpaca.json").read_text(encoding="utf-8"))
    style = planted["house_style"]
    answers = [rec["messages"][-1]["content"] for rec in chat] + [rec["output"] for rec in alpaca]
    assert all(a.startswith(style["opening"]) and a.endswith(style["closing"]) for a in answers)
    for pair in planted["generation_duplicates"]["pairs"]:
        assert chat[pair["index"]] == chat[pair["of"]]
