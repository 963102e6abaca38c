"""Turn review decisions (reviewer CSVs, accepted relabel candidates, accepted paraphrases) into the edits
that make the next dataset version, and the changelog that says why. Pure: validates everything first
(unknown rows, stale files, conflicting decisions, unknown labels) and writes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from audit_agent.dataset import Dataset
from audit_agent.errors import InputError
from audit_agent.io.dataset_writer import AddedRow
from audit_agent.review.reviewer_csv import NewRow, ReviewedRow, ReviewFile

MAX_CONFLICTS_SHOWN = 5
Action = Literal["relabel", "drop", "hard", "add"]


class Change(BaseModel):
    """One changelog line: which row, what changed, why, who decided."""

    id: str  # the row's id in DATA (for an added row: its new id)
    next_id: str  # its id in the new version ("" when dropped); differs from `id` only without an id column
    action: Action
    old_label: str | None = None
    new_label: str | None = None
    hard: bool = False
    text: str = ""
    decision: str = ""  # as the file put it: keep, relabel, drop, hard, accepted
    note: str = ""
    reviewer: str = ""
    source: str = ""  # the decision file
    source_row: int = 0
    also_in: list[str] = []  # other files that decided the same


class ApplyPlan(BaseModel):
    """The edits for io/dataset_writer.py and the changelog for report/review_outputs.py."""

    data: str
    files: list[str]
    drop: list[str]
    relabel: dict[str, str]
    hard: list[str]  # rows to tag hard (kept or relabelled)
    added: list[AddedRow]
    changes: list[Change]
    kept: int  # rows reviewed and kept as they were
    undecided: int
    rows_before: int
    rows_after: int


def _norm(text: str | None) -> str:
    return " ".join(str(text or "").split())


def _outcome(r: ReviewedRow) -> tuple[str, str, bool]:
    return (r.decision, r.new_label, r.hard)


def _describe(r: ReviewedRow) -> str:
    what = f"relabel -> {r.new_label}" if r.decision == "relabel" else r.decision
    return f"{Path(r.source).name} row {r.row}: {what}{' + hard' if r.hard else ''}"


class _Index:
    """DATA's rows by id, and the checks every decision passes."""

    def __init__(self, ds: Dataset, allow_new_labels: bool) -> None:
        self.ds = ds
        self.name = ds.path.name
        self.text = dict(zip(ds.frame["id"].astype(str), ds.frame["text"].astype(str), strict=True))
        labels = ds.frame["label"] if "label" in ds.frame.columns else [None] * len(ds)
        self.label = dict(zip(ds.frame["id"].astype(str), labels, strict=True))
        self.known = set(ds.label_set)
        self.check_labels = ds.kind == "classification" and bool(self.known) and not allow_new_labels

    def check_label(self, source: str, row: int, column: str, label: str) -> None:
        if self.check_labels and label not in self.known:
            raise InputError(source, f"label '{label}' is not a label of {self.name} (pass --allow-new-labels to "
                                     "add it)", row=row, column=column)

    def check_row(self, r: ReviewedRow) -> None:
        if r.id not in self.text:
            raise InputError(r.source, f"row id '{r.id}' is not in {self.name}", row=r.row, column="id")
        if r.text is not None and _norm(r.text) != _norm(self.text[r.id]):
            raise InputError(r.source, f"row '{r.id}': the text differs from {self.name} (a stale file, written "
                                       "for another version?)", row=r.row, column="text")
        current = self.label[r.id] or ""
        if r.label and r.label != current:
            raise InputError(r.source, f"row '{r.id}': label '{r.label}' here, '{current}' in {self.name} (a stale "
                                       "file, or applied already?)", row=r.row, column="label")
        if r.decision == "relabel":
            self.check_label(r.source, r.row, "new_label", r.new_label)


def _decided(files: Sequence[ReviewFile], index: _Index) -> tuple[dict[str, list[ReviewedRow]], int]:
    """Decided rows by id (every file's decision for it), after the per-row checks; conflicts raise."""
    by_id: dict[str, list[ReviewedRow]] = {}
    undecided = 0
    for f in files:
        for r in f.rows:
            if not r.decision:
                undecided += 1
                continue
            index.check_row(r)
            by_id.setdefault(r.id, []).append(r)
    conflicts = [(rid, rows) for rid, rows in by_id.items() if len({_outcome(r) for r in rows}) > 1]
    if conflicts:
        shown = "; ".join(f"{rid} ({', '.join(_describe(r) for r in rows)})"
                          for rid, rows in conflicts[:MAX_CONFLICTS_SHOWN])
        more = f" and {len(conflicts) - MAX_CONFLICTS_SHOWN} more" if len(conflicts) > MAX_CONFLICTS_SHOWN else ""
        first = conflicts[0][1]
        raise InputError(first[0].source, f"conflicting decisions for {len(conflicts)} row(s) between "
                                          f"{Path(first[0].source).name} and {Path(first[1].source).name}: "
                                          f"{shown}{more}")
    return by_id, undecided


def _position_ids(index: _Index, drop: set[str], n_raw_rows: int) -> tuple[dict[str, str], int]:
    """Without an id column the ids are 0-based positions: a kept row moves up by the drops before it."""
    if index.ds.id_col is not None:
        return {rid: rid for rid in index.text}, n_raw_rows - len(drop)
    dropped = sorted(int(d) for d in drop)
    moved: dict[str, str] = {}
    j = 0
    for rid in sorted(index.text, key=int):
        while j < len(dropped) and dropped[j] < int(rid):
            j += 1
        moved[rid] = str(int(rid) - j)
    return moved, n_raw_rows - len(drop)


def _new_ids(index: _Index, rows: Sequence[NewRow], first_position: int) -> list[str]:
    """Ids for added rows: positions without an id column; the next integers when every id is an integer;
    else the paraphrase's candidate_id (made unique)."""
    if index.ds.id_col is None:
        return [str(first_position + k) for k in range(len(rows))]
    taken = set(index.text)
    if taken and all(t.lstrip("-").isdigit() for t in taken):
        start = max(int(t) for t in taken) + 1
        return [str(start + k) for k in range(len(rows))]
    out = []
    for k, r in enumerate(rows):
        base = r.candidate_id or f"{r.source_id or 'new'}-p{k + 1}"
        cand, n = base, 1
        while cand in taken:
            n += 1
            cand = f"{base}-{n}"
        taken.add(cand)
        out.append(cand)
    return out


def _check_new_rows(index: _Index, rows: Sequence[NewRow]) -> None:
    """Accepted rows need a known label, a source row that still reads the same, and a text that is
    neither in DATA already nor accepted twice."""
    in_data = {_norm(t): rid for rid, t in index.text.items()}
    accepted: dict[str, NewRow] = {}
    for r in rows:
        index.check_label(r.source, r.row, "label", r.label)
        if r.source_id in index.text and r.source_text is not None \
                and _norm(r.source_text) != _norm(index.text[r.source_id]):
            raise InputError(r.source, f"source row '{r.source_id}': the text differs from {index.name} (a stale "
                                       "file?)", row=r.row, column="source_text")
        key = _norm(r.text)
        if key in in_data:
            raise InputError(r.source, f"the accepted text is already row '{in_data[key]}' of {index.name} "
                                       "(applied already?)", row=r.row, column="candidate")
        if key in accepted:
            first = accepted[key]
            raise InputError(r.source, f"the same text is accepted twice (also {Path(first.source).name} row "
                                       f"{first.row})", row=r.row, column="candidate")
        accepted[key] = r


def plan_apply(ds: Dataset, files: Sequence[ReviewFile], *, allow_new_labels: bool = False,
               n_raw_rows: int | None = None) -> ApplyPlan:
    """The edits that all decision files ask for, checked against DATA. `n_raw_rows` is the number of
    records in DATA's file (rows the loader skipped included; default: the loaded rows)."""
    index = _Index(ds, allow_new_labels)
    by_id, undecided = _decided(files, index)
    new_rows = [r for f in files for r in f.new_rows]
    _check_new_rows(index, new_rows)
    drop = {rid for rid, rows in by_id.items() if rows[0].decision == "drop"}
    moved, first_new = _position_ids(index, drop, n_raw_rows if n_raw_rows is not None else len(ds))
    changes: list[Change] = []
    relabel: dict[str, str] = {}
    hard: list[str] = []
    kept = 0
    for rid, rows in by_id.items():
        r = rows[0]
        also = sorted({Path(x.source).name for x in rows[1:]} - {Path(r.source).name})
        base = {"id": rid, "next_id": "" if rid in drop else moved[rid], "old_label": index.label[rid],
                "text": index.text[rid], "decision": r.decision, "note": " | ".join(x.note for x in rows if x.note),
                "reviewer": ", ".join(dict.fromkeys(x.reviewer for x in rows if x.reviewer)), "source": r.source,
                "source_row": r.row, "also_in": also, "hard": r.hard}
        if r.hard:
            hard.append(rid)
        if r.decision == "drop":
            changes.append(Change(action="drop", **base))
        elif r.decision == "relabel":
            relabel[rid] = r.new_label
            changes.append(Change(action="relabel", new_label=r.new_label, **base))
        elif r.hard:
            changes.append(Change(action="hard", new_label=index.label[rid], **base))
        else:
            kept += 1
    added = [AddedRow(id=nid, text=r.text, label=r.label, hard=r.hard)
             for nid, r in zip(_new_ids(index, new_rows, first_new), new_rows, strict=True)]
    for a, n in zip(added, new_rows, strict=True):
        note = n.note or (f"paraphrase of {n.source_id}" if n.source_id else "")
        changes.append(Change(id=a.id, next_id=a.id, action="add", new_label=a.label, hard=a.hard, text=a.text,
                              decision="accepted", note=note, reviewer=n.reviewer, source=n.source,
                              source_row=n.row))
    return ApplyPlan(data=str(ds.path), files=[f.path for f in files], drop=sorted(drop), relabel=relabel,
                     hard=hard, added=added, changes=changes, kept=kept, undecided=undecided, rows_before=len(ds),
                     rows_after=len(ds) - len(drop) + len(added))
