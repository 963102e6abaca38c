"""`apply`: decisions become the next version in the input's own format (columns kept, `hard` added),
with a changelog; conflicting, stale or unknown decisions fail before anything is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from audit_agent.cli import app
from audit_agent.errors import InputError
from audit_agent.io.loader import load_dataset
from audit_agent.report.review_outputs import CHANGELOG_CSV, CHANGELOG_MD
from audit_agent.review.commands import apply_files
from tests.reviewer_files import write_reviewer_csv

TEXTS = ["I want my money back for the lamp", "My card was charged twice this month",
         "Cannot log in since the update", "Please refund the broken kettle",
         "There is an extra fee on my bill", "Password reset link does not work"]
LABELS = ["refund", "billing", "login", "refund", "billing", "login"]
PARAPHRASE = "refund pls, kettle broke"


def write_data(path: Path, fmt: str) -> Path:
    """The same six rows in one of the supported formats, each with a field the loader does not use."""
    rows = [{"id": f"a{i}", "text": t, "extra": f"x{i}", "label": lab}
            for i, (t, lab) in enumerate(zip(TEXTS, LABELS, strict=True))]
    if fmt in ("csv", "tsv"):
        pd.DataFrame(rows).to_csv(path, index=False, sep="\t" if fmt == "tsv" else ",")
    elif fmt == "parquet":
        pd.DataFrame([{**r, "id": 10 + i} for i, r in enumerate(rows)]).to_parquet(path, index=False)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif fmt == "json":
        path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    elif fmt == "chat":
        path.write_text("".join(json.dumps({"messages": [
            {"role": "system", "content": "You sort support messages."}, {"role": "user", "content": t},
            {"role": "assistant", "content": lab}]}) + "\n" for t, lab in zip(TEXTS, LABELS, strict=True)),
            encoding="utf-8")
    elif fmt == "alpaca":
        path.write_text(json.dumps([{"instruction": t, "input": "", "output": lab}
                                    for t, lab in zip(TEXTS, LABELS, strict=True)]), encoding="utf-8")
    return path


def decide(data: Path, pos: int, decision: str, new_label: str = "", hard: bool = False,
           reviewer: str = "ana") -> dict[str, str]:
    """A reviewer CSV row for the row at `pos` of `data`, with the id and text the loader gives it."""
    frame = load_dataset(data).frame
    return {"id": str(frame["id"].iloc[pos]), "text": str(frame["text"].iloc[pos]), "label": str(frame["label"].iloc[pos]),
            "decision": decision, "new_label": new_label, "hard": "true" if hard else "false", "reviewer": reviewer,
            "note": f"{decision} by {reviewer}"}


def paraphrases_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    pd.DataFrame(rows, columns=["candidate_id", "source_id", "source_text", "candidate", "label", "status"]).to_csv(
        path, index=False)
    return path


SUFFIX = {"csv": ".csv", "tsv": ".tsv", "parquet": ".parquet", "jsonl": ".jsonl", "json": ".json",
          "chat": ".jsonl", "alpaca": ".json"}


@pytest.mark.parametrize("fmt", list(SUFFIX))
def test_every_format_keeps_its_fields_and_gets_a_hard_column(tmp_path: Path, fmt: str) -> None:
    data = write_data(tmp_path / f"train{SUFFIX[fmt]}", fmt)
    decisions = write_reviewer_csv(tmp_path / "ana.csv", [decide(data, 1, "drop"), decide(data, 2, "relabel", "refund"),
                                                   decide(data, 4, "keep", hard=True), decide(data, 5, "")])
    source_id = str(load_dataset(data).frame["id"].iloc[3])
    para = paraphrases_csv(tmp_path / "paraphrases.csv", [
        {"candidate_id": "p1", "source_id": source_id, "source_text": TEXTS[3], "candidate": PARAPHRASE,
         "label": "refund", "status": "accepted"},
        {"candidate_id": "p2", "source_id": source_id, "source_text": TEXTS[3], "candidate": "nope",
         "label": "refund", "status": "rejected"}])
    out = tmp_path / "v2" / data.name
    plan, paths = apply_files(data, [decisions, para], out=out)

    new = load_dataset(out).frame
    by_text = dict(zip(new["text"], new["label"], strict=True))
    assert len(new) == 6 - 1 + 1 == plan.rows_after
    assert TEXTS[1] not in by_text and "nope" not in by_text
    assert by_text[TEXTS[2]] == "refund" and by_text[PARAPHRASE] == "refund"
    assert [by_text[TEXTS[i]] for i in (0, 3, 4, 5)] == [LABELS[i] for i in (0, 3, 4, 5)]
    if fmt in ("csv", "tsv", "parquet"):
        raw = pd.read_parquet(out) if fmt == "parquet" else pd.read_csv(out, sep=None, engine="python", dtype=str)
        assert list(raw.columns) == ["id", "text", "extra", "label", "hard"]
        hard = dict(zip(raw["text"], raw["hard"].astype(str).str.lower(), strict=True))
        assert raw["extra"].iloc[0] == "x0" and len(set(raw["id"])) == len(raw)
    else:
        records: list[dict[str, Any]] = (json.loads(out.read_text()) if out.read_text().lstrip().startswith("[")
                                         else [json.loads(line) for line in out.read_text().splitlines()])
        assert (out.read_text().lstrip().startswith("[")) == (data.read_text().lstrip().startswith("["))
        texts = [load_dataset(out).frame["text"].iloc[i] for i in range(len(records))]
        hard = {t: str(r["hard"]).lower() for t, r in zip(texts, records, strict=True)}
        if fmt == "chat":
            assert records[0]["messages"][0] == {"role": "system", "content": "You sort support messages."}
        if fmt in ("jsonl", "json"):
            assert records[0]["extra"] == "x0"
    assert hard[TEXTS[4]] == "true" and {hard[t] for t in by_text if t != TEXTS[4]} == {"false"}
    log = pd.read_csv(paths["changelog_csv"], dtype=str, keep_default_na=False)
    assert sorted(log["action"]) == ["add", "drop", "hard", "relabel"]
    relabel = log[log["action"] == "relabel"].iloc[0]
    assert (relabel["old_label"], relabel["new_label"], relabel["reviewer"], relabel["source"]) == (
        "login", "refund", "ana", "ana.csv")
    assert "relabel by ana" in relabel["note"] and (out.parent / CHANGELOG_MD).exists()


def test_position_ids_move_up_after_drops(tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    pd.DataFrame({"text": TEXTS, "label": LABELS}).to_csv(data, index=False)
    decisions = write_reviewer_csv(tmp_path / "d.csv", [decide(data, 1, "drop"), decide(data, 3, "relabel", "billing")])
    plan, _ = apply_files(data, [decisions], out=tmp_path / "next.csv")
    moved = {c.id: c.next_id for c in plan.changes}
    assert moved == {"1": "", "3": "2"}
    new = load_dataset(tmp_path / "next.csv").frame
    assert new["text"].iloc[2] == TEXTS[3] and new["label"].iloc[2] == "billing"


def test_same_decision_in_two_files_is_fine_a_different_one_is_an_error(tmp_path: Path) -> None:
    data = write_data(tmp_path / "train.csv", "csv")
    a = write_reviewer_csv(tmp_path / "a.csv", [decide(data, 0, "relabel", "billing"), decide(data, 2, "drop")])
    b = write_reviewer_csv(tmp_path / "b.csv", [decide(data, 0, "relabel", "billing", reviewer="bo")])
    plan, _ = apply_files(data, [a, b], out=tmp_path / "ok" / "train.csv")
    [change] = [c for c in plan.changes if c.action == "relabel"]
    assert change.also_in == ["b.csv"] and change.reviewer == "ana, bo"

    c = write_reviewer_csv(tmp_path / "c.csv", [decide(data, 0, "drop", reviewer="cy"), decide(data, 2, "keep")])
    out = tmp_path / "conflict" / "train.csv"
    with pytest.raises(InputError) as err:
        apply_files(data, [a, c], out=out)
    message = str(err.value)
    assert "conflicting decisions for 2 row(s)" in message and "a.csv" in message and "c.csv" in message
    assert "a0 (" in message and "a2 (" in message
    assert not out.parent.exists()


@pytest.mark.parametrize(("change", "needle"), [
    ({"text": "something else"}, "column 'text': row 'a0': the text differs"),
    ({"label": "login"}, "column 'label': row 'a0': label 'login' here, 'refund' in train.csv"),
    ({"id": "zz"}, "row id 'zz' is not in train.csv"),
    ({"decision": "relabel", "new_label": "shipping"}, "label 'shipping' is not a label of train.csv"),
    ({"decision": "drop", "hard": "true"}, "a dropped row cannot be hard"),
    ({"decision": "relabel"}, "decision 'relabel' without a new_label"),
])
def test_bad_decisions_fail_before_writing(tmp_path: Path, change: dict[str, str], needle: str) -> None:
    data = write_data(tmp_path / "train.csv", "csv")
    decisions = write_reviewer_csv(tmp_path / "d.csv", [{**decide(data, 0, "keep"), **change}])
    out = tmp_path / "out" / "train.csv"
    with pytest.raises(InputError) as err:
        apply_files(data, [decisions], out=out)
    assert needle in str(err.value) and "d.csv, row 0" in str(err.value)
    assert not out.parent.exists()


def test_new_labels_only_when_allowed(tmp_path: Path) -> None:
    data = write_data(tmp_path / "train.csv", "csv")
    decisions = write_reviewer_csv(tmp_path / "d.csv", [decide(data, 0, "relabel", "shipping")])
    plan, _ = apply_files(data, [decisions], out=tmp_path / "o" / "train.csv", allow_new_labels=True)
    assert plan.relabel == {"a0": "shipping"}


def test_relabel_candidates_need_an_accept_column(tmp_path: Path) -> None:
    data = write_data(tmp_path / "train.csv", "csv")
    cands = pd.DataFrame({"id": ["a0", "a1"], "text": TEXTS[:2], "label": LABELS[:2],
                          "proposed_label": ["billing", "refund"], "pair": ["billing / refund"] * 2})
    cands.to_csv(tmp_path / "relabel_candidates.csv", index=False)
    with pytest.raises(InputError, match="no accept column"):
        apply_files(data, [tmp_path / "relabel_candidates.csv"], out=tmp_path / "o" / "train.csv")
    cands.assign(accept=["yes", "no"]).to_csv(tmp_path / "relabel_candidates.csv", index=False)
    plan, _ = apply_files(data, [tmp_path / "relabel_candidates.csv"], out=tmp_path / "o" / "train.csv")
    assert plan.relabel == {"a0": "billing"} and plan.undecided == 1


def test_accepted_text_already_in_data_or_twice_is_an_error(tmp_path: Path) -> None:
    data = write_data(tmp_path / "train.csv", "csv")
    row = {"candidate_id": "p1", "source_id": "a3", "source_text": TEXTS[3], "candidate": TEXTS[0],
           "label": "refund", "status": "accepted"}
    with pytest.raises(InputError, match="already row 'a0'"):
        apply_files(data, [paraphrases_csv(tmp_path / "p.csv", [row])], out=tmp_path / "o" / "train.csv")
    twice = [{**row, "candidate": PARAPHRASE}, {**row, "candidate_id": "p2", "candidate": PARAPHRASE}]
    with pytest.raises(InputError, match="accepted twice"):
        apply_files(data, [paraphrases_csv(tmp_path / "p.csv", twice)], out=tmp_path / "o" / "train.csv")
    stale = [{**row, "candidate": PARAPHRASE, "source_text": "old text"}]
    with pytest.raises(InputError, match="source row 'a3': the text differs"):
        apply_files(data, [paraphrases_csv(tmp_path / "p.csv", stale)], out=tmp_path / "o" / "train.csv")


def test_output_keeps_the_format_and_never_overwrites_the_input(tmp_path: Path) -> None:
    data = write_data(tmp_path / "train.csv", "csv")
    decisions = write_reviewer_csv(tmp_path / "d.csv", [decide(data, 0, "drop")])
    with pytest.raises(InputError, match=r"must end in '\.csv'"):
        apply_files(data, [decisions], out=tmp_path / "next.jsonl")
    with pytest.raises(InputError, match="the input file itself"):
        apply_files(data, [decisions], out=data)
    _, paths = apply_files(data, [decisions])
    assert paths["data"] == tmp_path / "train.next.csv"


def test_cli_apply(tmp_path: Path) -> None:
    data = write_data(tmp_path / "train.csv", "csv")
    a = write_reviewer_csv(tmp_path / "a.csv", [decide(data, 0, "drop")])
    b = write_reviewer_csv(tmp_path / "b.csv", [decide(data, 0, "keep")])
    runner = CliRunner()
    bad = runner.invoke(app, ["apply", str(data), "-d", str(a), "-d", str(b), "--out", str(tmp_path / "o" / "n.csv")])
    assert bad.exit_code == 2 and "conflicting decisions" in bad.stderr and not (tmp_path / "o").exists()
    good = runner.invoke(app, ["apply", str(data), "-d", str(a), "--out", str(tmp_path / "o" / "n.csv")])
    assert good.exit_code == 0 and "6 rows -> 5: 1 dropped" in good.stdout
    assert {p.name for p in (tmp_path / "o").iterdir()} == {"n.csv", CHANGELOG_CSV, CHANGELOG_MD}
