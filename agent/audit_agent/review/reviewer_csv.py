"""Read the files people fill in during review into one typed shape: the reviewer CSV exported by the
review page, a review_sample.csv filled in by hand, a relabel_candidates.csv with an accept column,
and a reviewed paraphrases.csv. Every problem is an InputError naming the file, row and column."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict

from audit_agent.errors import InputError
from audit_agent.io.formats import decode_bytes, read_delimited, read_json, read_jsonl

FileKind = Literal["reviewer", "review_sample", "relabel_candidates", "paraphrases", "two_columns"]
Decision = Literal["keep", "relabel", "drop", "hard", ""]
DECISIONS: tuple[Decision, ...] = ("keep", "relabel", "drop", "hard")
Outcome = Literal["keep", "relabel", "drop", ""]
"""A row's decision once read: `hard` is keep + hard=True; empty = undecided."""
REVIEWER_CSV_COLUMNS = ["id", "text", "label", "decision", "new_label", "hard", "note", "reviewer", "decided_at",
                        "review_label"]
"""The reviewer CSV (docs/review.md): selected by name, so order and extra columns (audit_id) do not matter."""
TRUE = frozenset({"true", "yes", "y", "1"})
FALSE = frozenset({"false", "no", "n", "0", ""})
ACCEPT = frozenset({"yes", "y", "true", "1", "accept", "accepted", "relabel"})
NOT_ACCEPTED = frozenset({"", "no", "n", "false", "0", "reject", "rejected", "pending"})
ACCEPT_COLUMNS = ("accept", "accepted", "decision", "status")


class ReviewedRow(BaseModel):
    """One decided (or undecided) row of a review file, in the reviewer CSV's terms."""

    model_config = ConfigDict(frozen=True)

    source: str
    row: int  # 0-based data row of the file (the header is not a row), as in every InputError
    id: str
    text: str | None = None  # None when the file has no text column
    label: str | None = None  # the given label as the file shows it
    decision: Outcome = ""
    new_label: str = ""
    hard: bool = False
    note: str = ""
    reviewer: str = ""
    decided_at: str = ""

    @property
    def review_label(self) -> str:
        """The label this reviewer assigns: the given label on keep (and hard), new_label on relabel, else
        empty (drop, undecided)."""
        if self.decision == "relabel":
            return self.new_label
        if self.decision == "keep":
            return self.label or ""
        return ""


class NewRow(BaseModel):
    """An accepted paraphrase: a row to add."""

    model_config = ConfigDict(frozen=True)

    source: str
    row: int
    candidate_id: str
    source_id: str
    source_text: str | None
    text: str
    label: str
    hard: bool = False
    note: str = ""
    reviewer: str = ""


class ReviewFile(BaseModel):
    """A review file read and validated: its kind, its rows, and (paraphrases) the rows to add."""

    path: str
    kind: FileKind
    rows: list[ReviewedRow] = []
    new_rows: list[NewRow] = []


def read_table(path: Path) -> pd.DataFrame:
    """A CSV/TSV/JSONL/JSON file as a table of stripped strings (missing values empty)."""
    if not path.exists():
        raise InputError(path, "file not found")
    raw = path.read_bytes()
    if not raw.strip():
        raise InputError(path, "file is empty")
    text, _ = decode_bytes(path, raw)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        records = read_jsonl(path, text) if suffix != ".json" else read_json(path, text)
        frame = pd.DataFrame.from_records(records)
    else:
        frame, _ = read_delimited(path, text, "tsv" if suffix == ".tsv" else "csv")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.astype(object).where(frame.notna(), "").map(_cell)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def detect_kind(path: Path, columns: list[str]) -> FileKind:
    """Which review file this is, from its columns."""
    cols = set(columns)
    if {"candidate", "status"} <= cols:
        return "paraphrases"
    if "proposed_label" in cols:
        return "relabel_candidates"
    if "decision" in cols or "review_label" in cols:
        return "reviewer"
    if cols & {"correct_label", "keep", "reviewer_label", "reviewer_ok"}:
        return "review_sample"
    raise InputError(path, "not a review file: expected a reviewer CSV (id, text, label, decision, ...), a "
                           "review_sample.csv, relabel_candidates.csv or paraphrases.csv "
                           f"(columns: {', '.join(columns[:12])})")


def _require(path: Path, frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    for col in columns:
        if col not in frame.columns:
            raise InputError(path, f"no '{col}' column (a {what} needs {', '.join(columns)})", column=col)


def _flag(path: Path, row: int, column: str, value: str) -> bool:
    low = value.lower()
    if low in TRUE:
        return True
    if low in FALSE:
        return False
    raise InputError(path, f"'{value}' is not true/false", row=row, column=column)


def _get(rec: dict[str, str], *names: str) -> str:
    for name in names:
        if rec.get(name):
            return rec[name]
    return ""


def _check_ids(path: Path, rows: list[ReviewedRow]) -> None:
    seen: dict[str, int] = {}
    for r in rows:
        if not r.id:
            raise InputError(path, "empty id", row=r.row, column="id")
        if r.id in seen:
            raise InputError(path, f"id '{r.id}' occurs twice (also row {seen[r.id]})", row=r.row, column="id")
        seen[r.id] = r.row


def _finish(path: Path, pos: int, rec: dict[str, str], decision: str, new_label: str, hard: bool) -> ReviewedRow:
    """Normalise one row: a relabel to the given label is a keep, decision hard (or hard without a
    decision) becomes keep + hard, a drop cannot be hard, a relabel needs its label."""
    label = rec.get("label", "")
    if decision == "relabel" and not new_label:
        raise InputError(path, "decision 'relabel' without a new_label", row=pos, column="new_label")
    if decision == "relabel" and new_label == label:
        decision = "keep"
    if decision == "hard" or (decision == "" and hard):
        decision, hard = "keep", True  # decision hard means keep + hard
    if decision == "drop" and hard:
        raise InputError(path, "a dropped row cannot be hard (hard rows are kept, tagged hard)", row=pos,
                         column="hard")
    return ReviewedRow(
        source=str(path), row=pos, id=rec.get("id", ""), text=rec.get("text"), label=rec.get("label"),
        decision=decision,  # type: ignore[arg-type]
        new_label=new_label if decision == "relabel" else "", hard=hard,
        note=_get(rec, "note", "reviewer_note"), reviewer=rec.get("reviewer", ""),
        decided_at=rec.get("decided_at", ""))


def _reviewer_row(path: Path, pos: int, rec: dict[str, str]) -> ReviewedRow:
    decision = rec.get("decision", "").lower()
    if decision not in (*DECISIONS, ""):
        raise InputError(path, f"decision '{rec['decision']}' is not one of {', '.join(DECISIONS)} (or empty)",
                         row=pos, column="decision")
    hard = _flag(path, pos, "hard", rec.get("hard", ""))
    review_label = rec.get("review_label", "")
    new_label = rec.get("new_label", "") or (review_label if decision == "relabel" else "")
    if not decision and review_label:
        decision = "keep" if review_label == rec.get("label", "") else "relabel"
        new_label = review_label if decision == "relabel" else ""
    row = _finish(path, pos, rec, decision, new_label, hard)
    if review_label and row.review_label and review_label != row.review_label:
        raise InputError(path, f"review_label '{review_label}' contradicts decision '{row.decision}' "
                               f"(which assigns '{row.review_label}')", row=pos, column="review_label")
    return row


def _sample_row(path: Path, pos: int, rec: dict[str, str]) -> ReviewedRow:
    """A hand-filled review_sample.csv: correct_label (or reviewer_label), keep (or reviewer_ok), note."""
    correct = _get(rec, "correct_label", "reviewer_label")
    keep_raw = _get(rec, "keep", "reviewer_ok")
    keep_col = "keep" if "keep" in rec else "reviewer_ok"
    hard = _flag(path, pos, "hard", rec.get("hard", ""))
    keep_low = keep_raw.lower()
    if keep_low == "hard":
        hard, keep_low = True, "yes"
    if keep_low == "drop":
        keep_low = "no"
    if keep_low not in TRUE | FALSE:
        raise InputError(path, f"'{keep_raw}' is not yes/no (or hard, drop)", row=pos, column=keep_col)
    label = rec.get("label", "")
    if keep_low and keep_low in FALSE:
        if correct and correct != label:
            raise InputError(path, f"says both drop ({keep_col}={keep_raw}) and relabel to '{correct}': "
                                   "choose one", row=pos, column=keep_col)
        return _finish(path, pos, rec, "drop", "", hard)
    if correct and correct != label:
        return _finish(path, pos, rec, "relabel", correct, hard)
    if correct or keep_low in TRUE:
        return _finish(path, pos, rec, "keep", "", hard)
    return _finish(path, pos, rec, "", "", hard)


def _candidate_row(path: Path, pos: int, rec: dict[str, str], accept_col: str) -> ReviewedRow:
    """An accepted relabel candidate relabels to new_label (if filled in) else proposed_label."""
    value = rec.get(accept_col, "").lower()
    hard = _flag(path, pos, "hard", rec.get("hard", ""))
    if value in ACCEPT:
        return _finish(path, pos, rec, "relabel", rec.get("new_label") or rec.get("proposed_label", ""), hard)
    if value in ("keep", "drop", "hard"):
        return _finish(path, pos, rec, value, "", hard)
    if value in NOT_ACCEPTED:
        return _finish(path, pos, rec, "", "", hard)
    raise InputError(path, f"'{rec.get(accept_col)}' is not yes/no (accept, reject, keep, drop, hard)", row=pos,
                     column=accept_col)


def _paraphrase_rows(path: Path, frame: pd.DataFrame) -> list[NewRow]:
    _require(path, frame, ("candidate", "label", "status"), "paraphrases file")
    out: list[NewRow] = []
    seen: dict[str, int] = {}
    for pos, rec in enumerate(_records(frame)):
        if rec["status"].lower() != "accepted":
            continue
        if not rec["candidate"]:
            raise InputError(path, "accepted row has an empty candidate", row=pos, column="candidate")
        if not rec["label"]:
            raise InputError(path, "accepted row has an empty label", row=pos, column="label")
        cid = rec.get("candidate_id", "")
        if cid and cid in seen:
            raise InputError(path, f"candidate_id '{cid}' occurs twice (also row {seen[cid]})", row=pos,
                             column="candidate_id")
        seen[cid] = pos
        out.append(NewRow(source=str(path), row=pos, candidate_id=cid, source_id=rec.get("source_id", ""),
                          source_text=rec.get("source_text") or None, text=rec["candidate"], label=rec["label"],
                          hard=_flag(path, pos, "hard", rec.get("hard", "")), note=rec.get("note", ""),
                          reviewer=rec.get("reviewer", "")))
    return out


def _records(frame: pd.DataFrame) -> list[dict[str, str]]:
    return [{str(k): str(v) for k, v in rec.items()} for rec in frame.to_dict(orient="records")]


def _rows(path: Path, frame: pd.DataFrame, parse: Callable[[Path, int, dict[str, str]], ReviewedRow]
          ) -> list[ReviewedRow]:
    rows = [parse(path, pos, rec) for pos, rec in enumerate(_records(frame))]
    _check_ids(path, rows)
    return rows


def read_review_file(path: Path | str) -> ReviewFile:
    """Read and validate any of the four review files (kind detected from the columns)."""
    path = Path(path)
    frame = read_table(path)
    kind = detect_kind(path, list(frame.columns))
    if kind == "paraphrases":
        return ReviewFile(path=str(path), kind=kind, new_rows=_paraphrase_rows(path, frame))
    _require(path, frame, ("id", "text", "label"), "review file")
    if kind == "relabel_candidates":
        accept_col = next((c for c in ACCEPT_COLUMNS if c in frame.columns), None)
        if accept_col is None:
            raise InputError(path, "no accept column: add 'accept' with yes/no per candidate", column="accept")
        rows = _rows(path, frame, lambda p, i, r: _candidate_row(p, i, r, accept_col))
    elif kind == "reviewer":
        rows = _rows(path, frame, _reviewer_row)
    else:
        rows = _rows(path, frame, _sample_row)
    return ReviewFile(path=str(path), kind=kind, rows=rows)


def _companion(frame: pd.DataFrame, base: str, column: str) -> str | None:
    """The hard/note column belonging to one reviewer's column: `hard_a` for `review_label_a`, else `hard`."""
    suffix = column.rsplit("_", 1)[-1] if "_" in column else ""
    for name in (f"{base}_{suffix}" if suffix else "", f"{column}_{base}", base):
        if name and name in frame.columns:
            return name
    return None


def read_two_columns(path: Path | str, col_a: str, col_b: str) -> tuple[ReviewFile, ReviewFile]:
    """One file with the two reviewers' labels side by side (empty = undecided). Hard flags come from
    `hard_<suffix>` (suffix after the column's last `_`), `<column>_hard` or a shared `hard` column;
    notes likewise from `note_<suffix>`, `<column>_note` or `note`."""
    path = Path(path)
    frame = read_table(path)
    _require(path, frame, ("id", "text", "label", col_a, col_b), "file with two reviewer columns")
    out = []
    for col in (col_a, col_b):
        hard_col, note_col = _companion(frame, "hard", col), _companion(frame, "note", col)
        rows = []
        for pos, rec in enumerate(_records(frame)):
            assigned = rec[col]
            decision = "" if not assigned else "keep" if assigned == rec["label"] else "relabel"
            hard = _flag(path, pos, hard_col, rec[hard_col]) if hard_col else False
            one = {**rec, "note": rec[note_col] if note_col else "", "reviewer": col}
            rows.append(_finish(path, pos, one, decision, assigned if decision == "relabel" else "", hard))
        _check_ids(path, rows)
        out.append(ReviewFile(path=f"{path}:{col}", kind="two_columns", rows=rows))
    return out[0], out[1]
