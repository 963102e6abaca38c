"""Bad input end-to-end through the CLI (`audit-agent run FILE --no-llm`): either exit 2 with a
one-line error naming the file (and row/column where relevant), no traceback and no half-written
output folder, or exit 0 with the finding that reports the problem. The loader-level table lives in
test_loader.py; this file adds the cases it lacks and checks what the user actually sees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audit_agent.cli import app

runner = CliRunner()
FAST_CHECKS = ["--check", "input_rows", "--check", "class_balance", "--check", "exact_duplicate"]
ROWS = [("I want my money back", "refund"), ("my card was charged twice", "billing"),
        ("cannot log in to the app", "login"), ("refund please wrong size", "refund"),
        ("charged two times this month", "billing"), ("password reset does not work", "login")]


def run_cli(data: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["run", str(data), "--no-llm", "--out", str(out), *FAST_CHECKS, *extra])
    return result.exit_code, result.stdout, result.stderr


def findings(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "findings.jsonl").read_text(encoding="utf-8").splitlines()]


def csv_bytes(rows: list[tuple[str, str]], *, sep: str = ",", newline: str = "\n") -> bytes:
    lines = [f"text{sep}label"] + [f"{t}{sep}{lab}" for t, lab in rows]
    return (newline.join(lines) + newline).encode("utf-8")


# --- exit 2: unusable input ---------------------------------------------------------------------
BAD = [
    # (file name, content, extra CLI args, message fragment, row/column fragment or None)
    ("ragged.csv", b"text,label\na b,x\nc d,y,z\ne f,x\n", [], "malformed CSV", "line 3"),
    ("space_delimited.csv", b"text label\nhello there refund\nbye now billing\n", [],
     "cannot tell which column holds the text", None),
    ("dupcols.csv", b"text,label,label\na,b,c\nd,e,f\n", [], "duplicate column", "column 'label'"),
    ("broken.jsonl", b'{"text": "a b", "label": "x"}\n{"text": "c d", "label": "y"}\n{"text": "e", \n', [],
     "not valid JSON", "line 3"),
    ("chat_no_assistant.jsonl",
     b'{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": [{"role": "user", "content": "yo"}]}\n',
     [], "no record has an assistant turn", "row 0"),
    ("numbers_as_text.csv", b"id,text,label\n1,hello,a\n2,bye,b\n3,more,a\n", ["--text-col", "id"],
     "holds numbers, not text", "column 'id'"),
    ("wrong_text_col.csv", csv_bytes(ROWS), ["--text-col", "body"], "no text column 'body'", "column 'body'"),
]


@pytest.mark.parametrize(("name", "content", "extra", "expected", "where"), BAD, ids=[b[0] for b in BAD])
def test_unusable_input_exits_2_with_one_line(tmp_path: Path, name: str, content: bytes, extra: list[str],
                                              expected: str, where: str | None) -> None:
    data = tmp_path / name
    data.write_bytes(content)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(data, out, *extra)
    assert code == 2, (stdout, stderr)
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error:") and name in lines[0] and expected in lines[0]
    if where is not None:
        assert where in lines[0]
    assert "Traceback" not in stdout + stderr
    assert not (out / "report.md").exists() and not (out / "findings.jsonl").exists()


def test_bad_eval_file_names_the_eval_file(tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    train.write_bytes(csv_bytes(ROWS))
    bad_eval = tmp_path / "eval.jsonl"
    bad_eval.write_bytes(b'{"text": "a", "label": "x"}\nnot json\n')
    code, _, stderr = run_cli(train, tmp_path / "out", "--eval", str(bad_eval))
    assert code == 2
    assert "eval.jsonl" in stderr and "line 2" in stderr and "train.csv" not in stderr
    assert not (tmp_path / "out" / "report.md").exists()


# --- exit 0: usable input, the problem is a finding ------------------------------------------------
def test_label_case_and_whitespace_variants_are_reported_by_class_balance(tmp_path: Path) -> None:
    rows = [*ROWS, ("charged again for nothing", "Billing "), ("double charge on card", "BILLING"), ("billing question about fees", "billing")]
    data = tmp_path / "variants.csv"
    data.write_bytes(csv_bytes(rows))
    code, _stdout, stderr = run_cli(data, tmp_path / "out")
    assert code == 0, stderr
    found = findings(tmp_path / "out")
    variants = [f for f in found if f["check"] == "class_balance" and f["evidence"].get("kind") == "label_variants"]
    assert len(variants) == 1
    assert {"Billing", "BILLING", "billing"} <= set(variants[0]["labels"])
    assert "refund" not in variants[0]["labels"]
    ws = [f for f in found if f["check"] == "input_rows" and f["evidence"]["problem"] == "label_whitespace"]
    assert ws and ws[0]["rows"] == ["6"]


def test_clean_labels_give_no_variant_finding(tmp_path: Path) -> None:
    data = tmp_path / "clean.csv"
    data.write_bytes(csv_bytes(ROWS))
    assert run_cli(data, tmp_path / "out")[0] == 0
    found = findings(tmp_path / "out")
    assert not [f for f in found if f["evidence"].get("kind") == "label_variants"]
    assert not [f for f in found if f["check"] == "input_rows"]


def test_nan_labels_and_texts(tmp_path: Path) -> None:
    """JSON NaN/null labels are missing labels; the string 'NaN' in a CSV text stays text."""
    recs = [f'{{"text": "{t}", "label": "{lab}"}}' for t, lab in ROWS]
    recs += ['{"text": "what is this charge", "label": NaN}', '{"text": "hello?", "label": null}',
             '{"text": NaN, "label": "refund"}']
    data = tmp_path / "nan.jsonl"
    data.write_text("\n".join(recs) + "\n", encoding="utf-8")
    code, _, stderr = run_cli(data, tmp_path / "out")
    assert code == 0, stderr
    by_problem = {f["evidence"]["problem"]: f for f in findings(tmp_path / "out") if f["check"] == "input_rows"}
    assert by_problem["missing_label"]["rows"] == ["6", "7"]
    assert by_problem["empty_text"]["rows"] == ["8"]
    text_nan = tmp_path / "nan_text.csv"
    text_nan.write_bytes(csv_bytes([*ROWS, ("NaN", "refund"), ("N/A", "billing")]))
    assert run_cli(text_nan, tmp_path / "out2")[0] == 0
    assert not [f for f in findings(tmp_path / "out2") if f["check"] == "input_rows"]


def test_mixed_line_endings_and_quoted_newlines(tmp_path: Path) -> None:
    body = (b'text,label\r\nI want my money back,refund\nmy card was charged twice,billing\r\n'
            b'"cannot log in\r\nto the app",login\n"refund\nplease",refund\r\nsecond charge,billing\n')
    data = tmp_path / "mixed.csv"
    data.write_bytes(body)
    out = tmp_path / "out"
    code, _, stderr = run_cli(data, out)
    assert code == 0, stderr
    train = json.loads((out / "summary.json").read_text(encoding="utf-8"))["dataset"]["train"]
    assert train["rows"] == 5 and train["bad_rows"] == {}


@pytest.mark.parametrize(("sep", "name"), [(";", "semi.csv"), ("\t", "tabs.csv"), ("|", "pipes.csv"),
                                          (",", "commas.tsv")])
def test_other_delimiters_are_sniffed_end_to_end(tmp_path: Path, sep: str, name: str) -> None:
    data = tmp_path / name
    data.write_bytes(csv_bytes(ROWS, sep=sep))
    out = tmp_path / "out"
    code, _, stderr = run_cli(data, out)
    assert code == 0, stderr
    assert (out / "report.md").exists()
    train = json.loads((out / "summary.json").read_text(encoding="utf-8"))["dataset"]["train"]
    assert (train["rows"], train["labels"]) == (6, 3)


def test_latin1_bom_and_broken_utf8_load_with_a_note(tmp_path: Path) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncafé crème refund,refund\nbye,billing\nmore,refund\n".encode("latin-1"))
    out = tmp_path / "out"
    assert run_cli(latin, out)[0] == 0
    assert "not UTF-8" in (out / "report.md").read_text(encoding="utf-8") + (out / "summary.json").read_text(
        encoding="utf-8")


def test_megabyte_cell_and_empty_strings_are_input_rows_findings(tmp_path: Path) -> None:
    big = "refund " * 150_000  # ~1 MB
    data = tmp_path / "big.csv"
    data.write_bytes(csv_bytes([*ROWS, (big, "refund"), ('""', "billing"), ("   ", "login")]))
    out = tmp_path / "out"
    code, _, stderr = run_cli(data, out)
    assert code == 0, stderr
    by_problem = {f["evidence"]["problem"]: f for f in findings(out) if f["check"] == "input_rows"}
    assert by_problem["oversized_text"]["rows"] == ["6"]
    assert by_problem["empty_text"]["rows"] == ["7", "8"]
    assert (out / "findings.jsonl").stat().st_size < 200_000, "the 1 MB cell must not be copied into findings"


def test_numeric_labels(tmp_path: Path) -> None:
    data = tmp_path / "numeric_labels.csv"
    data.write_bytes(csv_bytes([(t, str(i % 2)) for i, (t, _) in enumerate(ROWS)]))
    out = tmp_path / "out"
    assert run_cli(data, out)[0] == 0
    train = json.loads((out / "summary.json").read_text(encoding="utf-8"))["dataset"]["train"]
    assert (train["rows"], train["labels"]) == (6, 2)


@pytest.mark.slow
def test_ten_thousand_classes(tmp_path: Path) -> None:
    """10,000 classes with 2 rows each: every check ends (ran or skipped), class_balance reports."""
    rows = [(f"please help with request kind {i} variant {j}", f"intent_{i}") for i in range(10_000) for j in (0, 1)]
    data = tmp_path / "many.csv"
    data.write_bytes(csv_bytes(rows))
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(data), "--no-llm", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    text = json.dumps(summary)
    assert '"failed"' not in text, text[:2000]
    assert (out / "report.md").exists()
