"""review.html in a real headless Chromium: a reviewer labels 50 rows with the keyboard alone, exports
the CSV, and every exported row is what was typed; a reload keeps the work; hostile rows never run."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from audit_agent.report.review_page import REVIEW_CSV_COLUMNS
from tests.review_page_fixture import HOSTILE_LABEL, HOSTILE_ROWS, ReviewPageFixture, build_review_page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
REVIEWER = "Ana Lyst"
ROOT_SUPPORT = Path(__file__).resolve().parents[2] / "fixtures" / "support"
LABELLED = 50

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                       "(apt-get install chromium); .ci/run installs it"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the dev extra)")


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> ReviewPageFixture:
    return build_review_page(tmp_path_factory.mktemp("review"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, page_file: ReviewPageFixture) -> Iterator[Any]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1360, "height": 900})
    tab = context.new_page()
    tab.errors = []
    tab.on("pageerror", lambda exc: tab.errors.append(str(exc)))
    tab.on("dialog", lambda d: (tab.errors.append(f"dialog: {d.message}"), d.dismiss()))
    tab.goto(page_file.path.as_uri())
    yield tab
    context.close()


@dataclass
class Expected:
    decision: str
    new_label: str = ""
    hard: bool = False
    note: str = ""


def _set_reviewer(page: Any) -> None:
    assert page.locator("#name-dialog").is_visible()
    page.keyboard.type(REVIEWER)
    page.keyboard.press("Enter")
    assert page.locator("#name-dialog").is_hidden()


def _note(page: Any, text: str) -> None:
    page.keyboard.press("n")
    for i, line in enumerate(text.split("\n")):
        if i:
            page.keyboard.press("Shift+Enter")
        page.keyboard.type(line)
    page.keyboard.press("Enter")


def _other_label(labels: list[str], given: str, i: int) -> str:
    choices = [lab for lab in labels if lab not in (given, HOSTILE_LABEL)]
    return choices[i % len(choices)]


def _review(page: Any, fx: ReviewPageFixture, i: int) -> Expected:
    """Decide row i with keys only (the page is on row i); returns what the CSV must say."""
    given = fx.rows[i].label
    target = _other_label(fx.labels, given, i)
    kind = i % 10
    if kind in (0, 7):
        page.keyboard.press("k" if kind == 0 else "1")
        return Expected("keep")
    if kind == 1:  # relabel, type to filter
        page.keyboard.press("r")
        page.keyboard.type(target)
        page.keyboard.press("Enter")
        return Expected("relabel", target)
    if kind == 2:
        page.keyboard.press("3")
        return Expected("drop")
    if kind == 3:  # hard, then keep: both stay
        page.keyboard.press("h")
        page.keyboard.press("k")
        return Expected("keep", hard=True)
    if kind == 4:  # hard alone, then move on
        page.keyboard.press("4")
        page.keyboard.press("ArrowRight")
        return Expected("hard", hard=True)
    if kind == 5:
        note = f'row {i}: "polite", but fine'
        _note(page, note)
        page.keyboard.press("k")
        return Expected("keep", note=note)
    if kind == 6:  # relabel with a number key in the picker
        page.keyboard.press("2")
        page.keyboard.press(str(fx.labels.index(target) + 1))
        return Expected("relabel", target)
    if kind == 8:  # hard + note + relabel (arrow down to the second match of a short filter)
        page.keyboard.press("h")
        _note(page, "two intents\nin one message")
        page.keyboard.press("r")
        page.keyboard.type("_")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        matches = [lab for lab in fx.labels if lab.startswith("_")] + [
            lab for lab in fx.labels if "_" in lab and not lab.startswith("_")]
        chosen = matches[1]
        if chosen == given:
            return Expected("keep", hard=True, note="two intents\nin one message")
        return Expected("relabel", chosen, hard=True, note="two intents\nin one message")
    # kind 9: a note, a change of mind, then drop (drop clears hard)
    page.keyboard.press("h")
    _note(page, "not an intent")
    page.keyboard.press("d")
    return Expected("drop", note="not an intent")


def _export(page: Any) -> list[dict[str, str]]:
    with page.expect_download() as download:
        page.keyboard.press("x")
    raw = Path(download.value.path()).read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8"), newline=""))
    assert tuple(reader.fieldnames or ()) == REVIEW_CSV_COLUMNS
    return list(reader)


def _label_all(page: Any, fx: ReviewPageFixture) -> dict[str, Expected]:
    _set_reviewer(page)
    expected: dict[str, Expected] = {}
    for i in range(LABELLED):
        assert page.locator("#row-id").text_content() == fx.rows[i].id
        expected[fx.rows[i].id] = _review(page, fx, i)
    return expected


def _check_csv(records: list[dict[str, str]], fx: ReviewPageFixture, expected: dict[str, Expected]) -> None:
    by_id = {r.id: r for r in fx.rows}
    assert [r["id"] for r in records] == [r.id for r in fx.rows[:LABELLED]]
    for rec in records:
        want, row = expected[rec["id"]], by_id[rec["id"]]
        review_label = {"keep": row.label, "hard": row.label, "relabel": want.new_label}.get(want.decision, "")
        assert (rec["text"], rec["label"]) == (row.text, row.label)
        assert (rec["decision"], rec["new_label"], rec["review_label"]) == (want.decision, want.new_label,
                                                                           review_label), rec["id"]
        assert rec["hard"] == ("true" if want.hard else "false"), rec["id"]
        assert (rec["note"], rec["reviewer"], rec["audit_id"]) == (want.note, REVIEWER, fx.meta.audit_id)
        assert datetime.fromisoformat(rec["decided_at"].replace("Z", "+00:00")).tzinfo is not None


@pytest.mark.slow
def test_fifty_rows_by_keyboard_export_and_reload(page: Any, page_file: ReviewPageFixture) -> None:
    fx = page_file
    assert len(fx.rows) > LABELLED + 3
    expected = _label_all(page, fx)
    decided = len(expected)
    counts = {k: sum(e.decision == k for e in expected.values()) for k in ("keep", "relabel", "drop")}
    hard = sum(e.hard for e in expected.values())
    progress = (f"{decided} of {len(fx.rows)} decided · {counts['keep']} keep · {counts['relabel']} relabel"
                f" · {counts['drop']} drop · {hard} hard")
    assert page.locator("#progress-text").text_content() == progress
    first_label = fx.rows[0].label
    in_label = [r.id for r in fx.rows if r.label == first_label]
    label_row = page.locator("#label-counts tr", has=page.locator("td.name", has_text=first_label)).first
    assert label_row.locator("td").nth(1).text_content() == (
        f"{sum(i in expected for i in in_label)}/{len(in_label)}")

    page.keyboard.press("Home")
    page.keyboard.press("g")
    assert page.locator("#row-id").text_content() == fx.rows[LABELLED].id
    records = _export(page)
    _check_csv(records, fx, expected)

    page.reload()
    assert page.locator("#name-dialog").is_hidden()
    assert page.locator("#progress-text").text_content() == progress
    assert page.locator("#row-id").text_content() == fx.rows[LABELLED].id
    assert page.locator("#reviewer-name").text_content() == REVIEWER
    assert _export(page) == records
    assert page.errors == []


def test_hostile_rows_are_text_only(page: Any, page_file: ReviewPageFixture) -> None:
    fx = page_file
    _set_reviewer(page)
    hostile = {rid: text for rid, text, _ in HOSTILE_ROWS}
    positions = [i for i, r in enumerate(fx.rows) if r.id in hostile]
    assert len(positions) == len(hostile)
    for pos in positions:
        page.keyboard.press("Home")
        for _ in range(pos):
            page.keyboard.press("ArrowRight")
        row = fx.rows[pos]
        assert page.locator("#row-text").text_content() == hostile[row.id]
        assert page.locator("#row-label").text_content() == HOSTILE_LABEL
        page.keyboard.press("k")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img").count() == 0 and page.locator("b").count() == 0
    assert page.locator("script").count() == 2
    records = _export(page)
    assert {r["id"]: r["text"] for r in records} == hostile
    assert page.errors == []


def test_undo_and_relabel_to_a_new_label(page: Any, page_file: ReviewPageFixture) -> None:
    fx = page_file
    _set_reviewer(page)
    page.keyboard.press("d")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("u")
    assert page.locator("#row-decision").text_content() == "undecided"
    page.keyboard.press("r")
    page.keyboard.type("needs_a_new_label")
    assert page.locator("#picker-list li").all_text_contents() == ["new label: needs_a_new_label"]
    page.keyboard.press("Enter")
    page.keyboard.press("ArrowLeft")
    assert page.locator("#row-decision").text_content() == "relabel → needs_a_new_label"
    page.keyboard.press("r")
    page.keyboard.press("Escape")
    assert page.locator("#picker").is_hidden()
    [rec] = _export(page)
    assert (rec["id"], rec["decision"], rec["new_label"], rec["review_label"]) == (
        fx.rows[0].id, "relabel", "needs_a_new_label", "needs_a_new_label")


def test_a_second_tab_takes_the_first_tabs_decisions(page: Any, page_file: ReviewPageFixture) -> None:
    _set_reviewer(page)
    other = page.context.new_page()
    other.goto(page_file.path.as_uri())
    assert other.locator("#name-dialog").is_hidden()
    page.keyboard.press("k")
    page.keyboard.press("d")
    other.wait_for_function("document.getElementById('progress-text').textContent.startsWith('2 of')")
    assert other.locator("#row-id").text_content() == page_file.rows[0].id
    assert other.locator("#row-decision").text_content() == "keep"


ROUND_TRIP = 30


def _review_simply(page: Any, fx: ReviewPageFixture, reviewer: str, every: int) -> dict[str, tuple[str, str]]:
    """One reviewer, keys only: relabel every `every`-th row, drop every 7th, mark every 11th hard (kept),
    keep the rest. Returns row id -> (decision, the label this reviewer assigns)."""
    page.keyboard.type(reviewer)
    page.keyboard.press("Enter")
    out: dict[str, tuple[str, str]] = {}
    for i in range(ROUND_TRIP):
        row = fx.rows[i]
        if i % 7 == 3:
            page.keyboard.press("d")
            out[row.id] = ("drop", "")
        elif i % every == 0:
            target = _other_label(fx.labels, row.label, i)
            page.keyboard.press("r")
            page.keyboard.type(target)
            page.keyboard.press("Enter")
            out[row.id] = ("relabel", target)
        elif i % 11 == 5:
            page.keyboard.press("h")
            page.keyboard.press("k")
            out[row.id] = ("keep", row.label)
        else:
            page.keyboard.press("k")
            out[row.id] = ("keep", row.label)
    return out


def test_exported_csvs_round_trip_through_agree_and_apply(browser: Any, tmp_path: Path) -> None:
    """Two reviewers label the same rows in the page; their exports go through `agree` (kappa equals
    scikit-learn's on the same labels) and one of them through `apply` (the next version carries its
    relabels, drops and hard tags)."""
    from sklearn.metrics import cohen_kappa_score
    from typer.testing import CliRunner

    from audit_agent.cli import app

    fx = build_review_page(tmp_path / "page", hostile=False)
    files, decided = [], []
    for name, every in (("Ana", 4), ("Bo", 5)):
        context = browser.new_context(accept_downloads=True)
        tab = context.new_page()
        tab.goto(fx.path.as_uri())
        decided.append(_review_simply(tab, fx, name, every))
        records = _export(tab)
        context.close()
        path = tmp_path / f"review-{name}.csv"
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(REVIEW_CSV_COLUMNS))
            writer.writeheader()
            writer.writerows(records)
        files.append(path)
    data = ROOT_SUPPORT / "train.csv"
    res = CliRunner().invoke(app, ["agree", str(files[0]), str(files[1]), "--data", str(data),
                                   "--out", str(tmp_path / "agree")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "agree" / "agreement.json").read_text(encoding="utf-8"))
    ids = [r.id for r in fx.rows[:ROUND_TRIP]]
    a = [decided[0][i][1] or "(drop)" for i in ids]
    b = [decided[1][i][1] or "(drop)" for i in ids]
    assert report["kappa"] == pytest.approx(cohen_kappa_score(a, b), abs=5e-5)  # JSON keeps 4 decimals
    disagreements = {str(d["id"]) for d in report["disagreements"]}
    assert disagreements == {i for i, x, y in zip(ids, a, b, strict=True) if x != y}

    out = tmp_path / "v2" / "train.csv"
    res = CliRunner().invoke(app, ["apply", str(data), "--decisions", str(files[0]), "--out", str(out)])
    assert res.exit_code == 0, res.output
    before = pd.read_csv(data, dtype=str, keep_default_na=False).set_index("id")
    after = pd.read_csv(out, dtype=str, keep_default_na=False).set_index("id")
    for rid, (decision, label) in decided[0].items():
        if decision == "drop":
            assert rid not in after.index
        else:
            assert after.at[rid, "label"] == label
    hard = {fx.rows[i].id for i in range(ROUND_TRIP) if i % 11 == 5 and i % 7 != 3 and i % 4 != 0}
    assert set(after.index[after["hard"].str.lower() == "true"]) == hard
    assert len(after) == len(before) - sum(d == "drop" for d, _ in decided[0].values())
