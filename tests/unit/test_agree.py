"""`agree`: kappa equals scikit-learn's, per-label kappa is one-vs-rest, the verdict reads the ordinary rows,
and bad reviewer files fail with one line naming the file and row."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from typer.testing import CliRunner

from audit_agent.cli import app
from audit_agent.errors import InputError
from audit_agent.findings import Finding, Severity
from audit_agent.review.agree import DROP, agreement, flagged_rows
from audit_agent.review.reviewer_csv import read_review_file, read_two_columns
from tests.reviewer_files import write_reviewer_csv

LABELS = ["billing", "refund", "login", "shipping"]


def decision_row(i: int, given: str, assigned: str | None, *, hard: bool = False, reviewer: str = "a") -> dict[str, str]:
    """A reviewer CSV row: assigned None = drop, '' = undecided."""
    if assigned is None:
        return {"id": f"r{i}", "text": f"text {i}", "label": given, "decision": "drop", "hard": "false",
                "reviewer": reviewer}
    if assigned == "":
        return {"id": f"r{i}", "text": f"text {i}", "label": given, "decision": "", "hard": "false"}
    decision = "keep" if assigned == given else "relabel"
    return {"id": f"r{i}", "text": f"text {i}", "label": given, "decision": decision,
            "new_label": assigned if decision == "relabel" else "", "review_label": assigned,
            "hard": "true" if hard else "false", "reviewer": reviewer}


def two_files(tmp_path: Path, given: list[str], a: list[str | None], b: list[str | None],
              hard_a: set[int] | None = None) -> tuple[Path, Path]:
    hard_a = hard_a or set()
    pa = write_reviewer_csv(tmp_path / "a.csv", [decision_row(i, g, x, hard=i in hard_a, reviewer="ana")
                                             for i, (g, x) in enumerate(zip(given, a, strict=True))])
    pb = write_reviewer_csv(tmp_path / "b.csv", [decision_row(i, g, y, reviewer="bo")
                                             for i, (g, y) in enumerate(zip(given, b, strict=True))])
    return pa, pb


@pytest.mark.parametrize("seed", range(6))
def test_kappa_equals_sklearn_on_random_labels(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 120))
    labels = LABELS[: int(rng.integers(2, 5))]
    given = rng.choice(labels, n).tolist()
    a = [g if rng.random() < 0.7 else str(rng.choice(labels)) for g in given]
    b = [g if rng.random() < 0.6 else str(rng.choice(labels)) for g in given]
    r = agreement(*map(read_review_file, two_files(tmp_path, given, a, b)))
    assert r.n_compared == n
    assert r.kappa == pytest.approx(cohen_kappa_score(a, b), abs=1e-4)
    assert r.observed_agreement == pytest.approx(np.mean(np.array(a) == np.array(b)), abs=1e-4)
    for p in r.per_label:
        expected = cohen_kappa_score([x == p.label for x in a], [y == p.label for y in b])
        assert (p.kappa is None and math.isnan(expected)) or p.kappa == pytest.approx(expected, abs=1e-4)
        assert (p.n_a, p.n_b) == (a.count(p.label), b.count(p.label))
    matrix = np.array(r.confusion)
    assert matrix.sum() == n and np.trace(matrix) == sum(x == y for x, y in zip(a, b, strict=True))
    pair = (r.confusion_labels.index(a[0]), r.confusion_labels.index(b[0]))
    assert matrix[pair] == sum(x == a[0] and y == b[0] for x, y in zip(a, b, strict=True))
    assert len(r.disagreements) == sum(x != y for x, y in zip(a, b, strict=True))


def test_perfect_agreement(tmp_path: Path) -> None:
    given = [LABELS[i % 4] for i in range(40)]
    r = agreement(*map(read_review_file, two_files(tmp_path, given, given, given)))
    assert r.kappa == 1.0 == cohen_kappa_score(given, given)
    assert r.disagreements == [] and r.verdict == "good shape"
    assert all(p.kappa == 1.0 for p in r.per_label)


def test_one_label_only_is_undefined_as_in_sklearn(tmp_path: Path) -> None:
    given = ["refund"] * 30
    r = agreement(*map(read_review_file, two_files(tmp_path, given, given, given)))
    with pytest.warns(Warning):
        assert math.isnan(cohen_kappa_score(given, given))
    assert r.kappa is None and r.observed_agreement == 1.0
    assert r.per_label[0].kappa is None


def test_drop_is_a_category_and_undecided_rows_are_not_compared(tmp_path: Path) -> None:
    given = [LABELS[i % 4] for i in range(30)]
    a: list[str | None] = list(given)
    b: list[str | None] = list(given)
    a[0], b[1], a[2] = None, None, ""
    r = agreement(*map(read_review_file, two_files(tmp_path, given, a, b)))
    assert r.n_compared == 29 and r.n_undecided == 1
    assert {(d.id, d.a, d.b) for d in r.disagreements} == {("r0", DROP, given[0]), ("r1", given[1], DROP)}
    ya = [x if x is not None else DROP for x in a if x != ""]
    yb = [y if y is not None else DROP for x, y in zip(a, b, strict=True) if x != ""]
    assert r.kappa == pytest.approx(cohen_kappa_score(ya, yb), abs=1e-4)


def _disagreeing(n: int, k: int) -> tuple[list[str], list[str | None], list[str | None]]:
    given = [LABELS[i % 4] for i in range(n)]
    b: list[str | None] = list(given)
    for i in range(k):
        b[i] = LABELS[(i + 1) % 4]
    return given, list(given), b


def test_disagreement_only_on_hard_rows_is_good_shape(tmp_path: Path) -> None:
    given, a, b = _disagreeing(60, 12)
    hard = agreement(*map(read_review_file, two_files(tmp_path, given, a, b, hard_a=set(range(12)))))
    assert hard.kappa is not None and hard.kappa < 0.8  # low overall ...
    assert hard.n_on_hard == 12 and hard.n_ordinary_disagreements == 0
    assert hard.verdict == "good shape" and "only on rows marked hard" in hard.verdict_reason
    ordinary = agreement(*map(read_review_file, two_files(tmp_path, given, a, b)))
    assert ordinary.kappa == hard.kappa  # ... the same numbers on ordinary rows need work
    assert ordinary.kappa_ordinary is not None and ordinary.kappa_ordinary < 0.8
    assert ordinary.verdict in ("tighten the rules", "labels need work")


def test_flagged_rows_from_findings_count_like_hard_ones(tmp_path: Path) -> None:
    given, a, b = _disagreeing(60, 12)
    findings = [Finding(check="label_issue", severity=Severity.HIGH, message="m", rows=[f"r{i}" for i in range(12)]),
                Finding(check="label_leak", severity=Severity.HIGH, message="style", rows=["r20", "r21"])]
    flagged = flagged_rows(findings)
    assert flagged == {f"r{i}" for i in range(12)}  # a style finding does not make a row hard to label
    r = agreement(*map(read_review_file, two_files(tmp_path, given, a, b)), flagged=flagged)
    assert r.n_on_flagged == 12 and r.n_ordinary_disagreements == 0 and r.verdict == "good shape"


def test_verdict_bands_and_too_few_rows(tmp_path: Path) -> None:
    given, a, b = _disagreeing(60, 30)
    r = agreement(*map(read_review_file, two_files(tmp_path, given, a, b)))
    assert r.kappa_ordinary is not None and r.kappa_ordinary < 0.6 and r.verdict == "labels need work"
    given, a, b = _disagreeing(10, 3)
    assert agreement(*map(read_review_file, two_files(tmp_path, given, a, b))).verdict == "too few rows"


def test_page_hard_decision_is_keep_plus_hard(tmp_path: Path) -> None:
    path = tmp_path / "page.csv"
    path.write_text("id,text,label,decision,new_label,review_label,hard,note,reviewer,decided_at,audit_id\r\n"
                    "t1,\"two, lines\nhere\",refund,hard,,,true,\"a \"\"note\"\"\",Ana,2025-05-01T09:30:12.345Z,"
                    "3f9c2a7d1e0b\r\n", encoding="utf-8")
    [row] = read_review_file(path).rows
    assert (row.decision, row.hard, row.review_label, row.note) == ("keep", True, "refund", 'a "note"')
    assert row.text == "two, lines\nhere"


def test_legacy_review_sample_and_two_column_file(tmp_path: Path) -> None:
    sample = tmp_path / "review_sample.csv"
    sample.write_text("id,text,label,correct_label,keep,note\n1,a,x,,yes,\n2,b,x,y,,typo\n3,c,x,,no,\n4,d,x,,,\n"
                      "5,e,x,,hard,\n", encoding="utf-8")
    rows = read_review_file(sample).rows
    assert [(r.decision, r.review_label, r.hard) for r in rows] == [
        ("keep", "x", False), ("relabel", "y", False), ("drop", "", False), ("", "", False), ("keep", "x", True)]
    both = tmp_path / "both.csv"
    both.write_text("id,text,label,review_label_a,review_label_b,hard_a\n1,a,x,x,y,true\n2,b,x,x,x,false\n",
                    encoding="utf-8")
    a, b = read_two_columns(both, "review_label_a", "review_label_b")
    assert [r.hard for r in a.rows] == [True, False] and [r.hard for r in b.rows] == [False, False]
    assert [r.review_label for r in b.rows] == ["y", "x"]


@pytest.mark.parametrize(("b_text", "needle"), [
    ("id,text,label,decision\nr0,text 0,refund,keep\nr9,text 9,refund,keep\n", "row id 'r1' is missing from"),
    ("id,text,label,decision\nr0,text 0,refund,keep\nr0,text 0,refund,keep\n", "row 1, column 'id': id 'r0' occurs twice"),
    ("id,text,label,decision,new_label\nr0,text 0,refund,relabel,nonsense\nr1,text 1,refund,keep,\n",
     "row 0, column 'new_label': label 'nonsense' is not a label"),
    ("id,text,decision\nr0,text 0,keep\nr1,text 1,keep\n", "column 'label': no 'label' column"),
    ("id,text,label,decision\nr0,other text,refund,keep\nr1,text 1,refund,keep\n", "another text"),
    ("id,text,label,decision\nr0,text 0,refund,maybe\nr1,text 1,refund,keep\n", "decision 'maybe' is not one of"),
])
def test_bad_files_fail_naming_file_and_row(tmp_path: Path, b_text: str, needle: str) -> None:
    a = write_reviewer_csv(tmp_path / "a.csv", [decision_row(0, "refund", "refund"), decision_row(1, "refund", "refund")])
    b = tmp_path / "b.csv"
    b.write_text(b_text, encoding="utf-8")
    with pytest.raises(InputError) as err:
        agreement(read_review_file(a), read_review_file(b))
    assert needle in str(err.value) and ("b.csv" in str(err.value) or "a.csv" in str(err.value))


def test_cli_exit_2_and_nothing_written(tmp_path: Path) -> None:
    a = write_reviewer_csv(tmp_path / "a.csv", [decision_row(0, "refund", "refund")])
    b = write_reviewer_csv(tmp_path / "b.csv", [decision_row(1, "refund", "refund")])
    result = CliRunner().invoke(app, ["agree", str(a), str(b), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "missing from" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()
    ok = CliRunner().invoke(app, ["agree", str(a), str(a), "--out", str(tmp_path / "o")])
    assert ok.exit_code == 0 and "too few rows" in ok.stdout
    assert {p.name for p in (tmp_path / "o").iterdir()} == {"agreement.md", "agreement.json"}
