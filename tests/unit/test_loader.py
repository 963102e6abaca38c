"""Loader: every supported format, column detection, and a table of bad inputs with the expected
one-line error (file/row/column named) or the bad rows listed for a finding."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from audit_agent.errors import InputError
from audit_agent.io.loader import load_dataset

GOOD = [("I want my money back", "refund"), ("my card was charged twice", "billing"),
        ("cannot log in", "login"), ("refund please", "refund")]


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def csv_text(rows=GOOD, header="text,label", sep=",") -> str:
    return header.replace(",", sep) + "\n" + "\n".join(f"{t}{sep}{lab}" for t, lab in rows) + "\n"


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "json", "parquet"])
def test_formats_load_the_same_rows(tmp_path: Path, fmt: str) -> None:
    frame = pd.DataFrame(GOOD, columns=["utterance", "intent"])
    path = tmp_path / f"data.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif fmt == "json":
        frame.to_json(path, orient="records")
    else:
        frame.to_parquet(path)
    ds = load_dataset(path)
    assert ds.texts == [t for t, _ in GOOD]
    assert ds.labels == [lab for _, lab in GOOD]
    assert ds.ids == [0, 1, 2, 3]
    assert ds.kind == "classification"
    assert any("'utterance'" in n for n in ds.notes) and any("'intent'" in n for n in ds.notes)


def test_chat_jsonl_uses_last_user_turn_and_assistant_target(tmp_path: Path) -> None:
    recs = [{"messages": [{"role": "system", "content": "be nice"}, {"role": "user", "content": f"q{i} first"},
                          {"role": "assistant", "content": "a"}, {"role": "user", "content": f"q{i} last"},
                          {"role": "assistant", "content": f"Thanks for reaching out! answer number {i} here"}]}
            for i in range(4)]
    path = write(tmp_path, "chat.jsonl", "\n".join(json.dumps(r) for r in recs))
    ds = load_dataset(path)
    assert ds.texts[0] == "q0 last"
    assert ds.labels[0].startswith("Thanks for reaching out!")
    assert ds.fmt == "chat" and ds.kind == "generation"


def test_chat_rows_without_assistant_turn_are_listed(tmp_path: Path) -> None:
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]}
    bad = {"messages": [{"role": "user", "content": "no answer"}]}
    path = write(tmp_path, "chat.jsonl", "\n".join(json.dumps(r) for r in [good, bad, good]))
    ds = load_dataset(path, kind="generation")
    assert ds.bad_rows["no_assistant_turn"] == ["1"]
    only_bad = write(tmp_path, "bad.jsonl", json.dumps(bad))
    with pytest.raises(InputError, match="no record has an assistant turn"):
        load_dataset(only_bad)


def test_alpaca_json(tmp_path: Path) -> None:
    recs = [{"instruction": "Summarise", "input": f"text {i}", "output": f"summary number {i} of the text"}
            for i in range(5)]
    ds = load_dataset(write(tmp_path, "a.json", json.dumps(recs)))
    assert ds.texts[0] == "Summarise\n\ntext 0"
    assert ds.labels[0] == "summary number 0 of the text"


def test_explicit_columns_and_ids(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "rid,msg,cls\nr1,hello there,a\nr2,bye now,b\n")
    ds = load_dataset(path, text_col="msg", label_col="cls", id_col="rid")
    assert ds.ids == ["r1", "r2"]


BAD_INPUTS = [
    # (name, file content, loader kwargs, expected message fragment)
    ("empty.csv", "", {}, "file is empty"),
    ("header_only.csv", "text,label\n", {}, "no data rows"),
    ("ragged.csv", "text,label\na,b\nc,d,e\n", {}, "malformed CSV"),
    ("unclosed.csv", 'text,label\n"a,b\nc,d\n', {}, "malformed CSV"),
    ("dupcols.csv", "text,text,label\na,b,c\n", {}, "duplicate column"),
    ("nocols.csv", "foo,bar\na,b\n", {}, "cannot tell which column holds the text"),
    ("unknown.csv", csv_text(), {"text_col": "body"}, "no text column 'body'"),
    ("unknownlabel.csv", csv_text(), {"label_col": "y"}, "no label column 'y'"),
    ("alllabelsempty.csv", "text,label\na,\nb,\n", {}, "every label is empty"),
    ("numeric.csv", "text,label\n1,a\n2,b\n3.5,a\n", {}, "holds numbers, not text"),
    ("emptytext.csv", 'text,label\n"",a\n" ",b\n', {}, "every row has an empty text"),
    ("broken.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": \n', {}, "line 2: not valid JSON"),
    ("array.jsonl", '[1, 2]\n', {}, "line 1: expected a JSON object"),
    ("dupids.csv", "id,text,label\n1,a,x\n1,b,y\n", {"id_col": "id"}, "occur more than once"),
    ("data.xlsx", "whatever", {}, "unsupported file type"),
    ("bad.parquet", "not parquet", {}, "cannot read Parquet"),
]


@pytest.mark.parametrize(("name", "content", "kwargs", "expected"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_a_one_line_error_naming_the_file(tmp_path: Path, name, content, kwargs, expected) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(InputError) as info:
        load_dataset(path, **kwargs)
    message = str(info.value)
    assert expected in message
    assert name in message
    assert "\n" not in message


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_dataset(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="is a directory"):
        load_dataset(tmp_path)


def test_usable_data_with_bad_rows_lists_them(tmp_path: Path) -> None:
    big = "x" * 1_000_000
    content = f'text,label\nhello,a\n"",b\nfine,\n{big},a\nok, b \nmore,b\n'
    ds = load_dataset(write(tmp_path, "mixed.csv", content))
    assert ds.bad_rows["empty_text"] == ["1"]
    assert ds.bad_rows["missing_label"] == ["2"]
    assert ds.bad_rows["oversized_text"] == ["3"]
    assert ds.bad_rows["label_whitespace"] == ["4"]
    assert max(len(t) for t in ds.texts) == 20_000
    assert ds.ids == [0, 2, 3, 4, 5]  # positions in the file survive dropping row 1
    assert "b" in ds.label_set and " b " not in ds.label_set


def test_encodings_bom_latin1_broken_utf8(tmp_path: Path) -> None:
    bom = load_dataset(write(tmp_path, "bom.csv", b"\xef\xbb\xbftext,label\ncaf\xc3\xa9 ok,a\nbye,b\n"))
    assert bom.texts[0] == "café ok" and "byte-order mark" in " ".join(bom.notes)
    latin = load_dataset(write(tmp_path, "latin.csv", "text,label\ncafé crème,a\nbye,b\n".encode("latin-1")))
    assert latin.texts[0] == "café crème" and "not UTF-8" in " ".join(latin.notes)
    broken = load_dataset(write(tmp_path, "broken.csv", b"text,label\ncaf\xc3\xa9 \xff ok,a\nbye,b\n"))
    assert "\ufffd" in broken.texts[0] and "café" in broken.texts[0]
    assert any("undecodable" in n and "line 2" in n for n in broken.notes)


def test_delimiter_line_endings_and_quoted_newlines(tmp_path: Path) -> None:
    semi = load_dataset(write(tmp_path, "semi.csv", csv_text(sep=";")))
    assert semi.labels == [lab for _, lab in GOOD]
    crlf = load_dataset(write(tmp_path, "crlf.csv", b'text,label\r\n"two\nlines",a\r\nbye,b\n'))
    assert crlf.texts == ["two\nlines", "bye"]


def test_numeric_labels_stay_integral_strings(tmp_path: Path) -> None:
    ds = load_dataset(write(tmp_path, "n.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 2}\n'))
    assert ds.labels == ["1", "2"]


def test_id_column_is_detected_only_when_unique(tmp_path: Path) -> None:
    ds = load_dataset(write(tmp_path, "ids.csv", "id,text,label\nr1,hello,a\nr2,bye,b\n"))
    assert ds.ids == ["r1", "r2"] and ds.id_col == "id"
    dup = load_dataset(write(tmp_path, "dupids.csv", "id,text,label\nr1,hello,a\nr1,bye,b\n"))
    assert dup.ids == [0, 1] and any("not unique" in n for n in dup.notes)
