"""Write the next version of a dataset in the input's own format (CSV, TSV, Parquet, JSONL, JSON, chat,
Alpaca): every original column/field and its order kept, rows dropped, labels changed, rows added and a
`hard` column (true/false) tagging the hard examples. Reads with the same helpers as the deduplicated
copy of a run (report/outputs.py uses the helpers here) and writes atomically."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from audit_agent.dataset import Dataset
from audit_agent.errors import InputError
from audit_agent.io.atomic import write_jsonl, write_text, write_with
from audit_agent.io.formats import decode_bytes, read_delimited, read_json, read_jsonl, read_parquet

HARD_COLUMN = "hard"
TRUE_VALUES = frozenset({"true", "yes", "y", "1"})


class AddedRow(BaseModel):
    """A row `apply` adds (an accepted paraphrase)."""

    id: str
    text: str
    label: str
    hard: bool = False


def raw_records(ds: Dataset) -> list[dict[str, Any]]:
    """The input file's records as stored (JSON / JSONL / chat / Alpaca)."""
    text, _ = decode_bytes(ds.path, ds.path.read_bytes())
    return read_jsonl(ds.path, text) if ds.path.suffix.lower() in (".jsonl", ".ndjson") else read_json(ds.path, text)


def raw_ids(n: int, values: pd.Series | None) -> pd.Series:
    """The loader's row ids for the raw input rows: the id column, else the 0-based position."""
    if values is None:
        return pd.Series([str(i) for i in range(n)])
    return values.astype(str).reset_index(drop=True)


def write_delimited(frame: pd.DataFrame, path: Path, sep: str) -> None:
    """CSV/TSV via pyarrow's writer (much faster than pandas at a million rows)."""
    import pyarrow as pa
    from pyarrow import csv as pa_csv

    table = pa.Table.from_pandas(frame, preserve_index=False)
    pa_csv.write_csv(table, path, write_options=pa_csv.WriteOptions(delimiter=sep))


def new_record(ds: Dataset, text: str, label: str) -> dict[str, Any]:
    """A new record in the input's own shape (chat, Alpaca, or its text/label fields)."""
    if ds.fmt == "chat":
        return {"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": label}]}
    if ds.fmt == "alpaca":
        return {"instruction": text, "input": "", "output": label}
    rec = {ds.text_col: text}
    if ds.label_col:
        rec[ds.label_col] = label
    return rec


@dataclass
class RawData:
    """DATA as stored: a table (CSV/TSV/Parquet) or a list of records (JSON/JSONL/chat/Alpaca), with the
    loader's row id of every raw row."""

    ds: Dataset
    ids: list[str]
    frame: pd.DataFrame | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    json_array: bool = False

    @property
    def n_rows(self) -> int:
        return len(self.frame) if self.frame is not None else len(self.records)


def read_raw(ds: Dataset) -> RawData:
    """Read DATA's file again as stored, every field kept."""
    if ds.fmt in ("csv", "tsv"):
        text, _ = decode_bytes(ds.path, ds.path.read_bytes())
        frame, _ = read_delimited(ds.path, text, ds.fmt)
        return RawData(ds, raw_ids(len(frame), frame[ds.id_col] if ds.id_col else None).tolist(), frame=frame)
    if ds.fmt == "parquet":
        frame = read_parquet(ds.path)
        return RawData(ds, raw_ids(len(frame), frame[ds.id_col] if ds.id_col else None).tolist(), frame=frame)
    records = raw_records(ds)
    ids = [str(r.get(ds.id_col)) if ds.id_col else str(i) for i, r in enumerate(records)]
    array = ds.path.read_bytes().lstrip()[:1] == b"["
    return RawData(ds, ids, records=records, json_array=array)


def check_out_path(ds: Dataset, out: Path) -> None:
    """The new version keeps the input's format (so its extension) and never overwrites the input."""
    if out.suffix.lower() != ds.path.suffix.lower():
        raise InputError(out, f"must end in '{ds.path.suffix}', the format of {ds.path.name}")
    if out.resolve() == ds.path.resolve():
        raise InputError(out, "is the input file itself: write the new version to another file")


def _like(old: Any, new: str) -> Any:
    """`new` with the type of the value it replaces (an integer label stays an integer)."""
    if isinstance(old, bool) or not isinstance(old, int | float):
        return new
    try:
        return type(old)(new)
    except ValueError:
        return new


def _is_true(value: Any) -> bool:
    return value is True or str(value).strip().lower() in TRUE_VALUES


def _set_record_label(ds: Dataset, rec: dict[str, Any], label: str) -> None:
    if ds.fmt == "chat":
        messages = rec.get("messages") or []
        last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
        if last is not None:
            messages[last]["content"] = label
    elif ds.fmt == "alpaca":
        rec["output"] = label
    elif ds.label_col is not None:
        rec[ds.label_col] = _like(rec.get(ds.label_col), label)


def _new_records(ds: Dataset, added: Sequence[AddedRow], like_id: Any) -> list[dict[str, Any]]:
    out = []
    for a in added:
        rec = new_record(ds, a.text, a.label)
        if ds.id_col is not None:
            rec = {ds.id_col: _like(like_id, a.id), **rec}
        out.append(rec)
    return out


def _table_version(raw: RawData, drop: Collection[str], relabel: Mapping[str, str], hard: Collection[str],
                   added: Sequence[AddedRow], text_flags: bool) -> pd.DataFrame:
    ds, frame = raw.ds, raw.frame
    assert frame is not None
    frame = frame.copy()
    ids = pd.Series(raw.ids, index=frame.index)
    if relabel and ds.label_col is not None:
        hit = ids.isin(list(relabel)).to_numpy()
        new: pd.Series = ids[hit].map(relabel)
        if pd.api.types.is_numeric_dtype(frame[ds.label_col]):
            as_number = pd.to_numeric(new, errors="coerce")
            if as_number.notna().all():
                new = as_number
            else:
                frame[ds.label_col] = frame[ds.label_col].astype(object)
        frame.loc[hit, ds.label_col] = new.to_numpy()
    was_hard = frame[HARD_COLUMN].map(_is_true) if HARD_COLUMN in frame.columns else pd.Series(False, index=frame.index)
    is_hard = was_hard | ids.isin(list(hard))
    frame[HARD_COLUMN] = is_hard.map(lambda h: "true" if h else "false") if text_flags else is_hard
    frame = frame[~ids.isin(list(drop)).to_numpy()]
    if added:
        like_id = frame[ds.id_col].iloc[0] if ds.id_col is not None and len(frame) else None
        new_rows = pd.DataFrame(_new_records(ds, added, like_id))
        new_rows[HARD_COLUMN] = [("true" if a.hard else "false") if text_flags else a.hard for a in added]
        for col in new_rows.columns:
            if col in frame.columns and pd.api.types.is_numeric_dtype(frame[col]):
                new_rows[col] = pd.to_numeric(new_rows[col], errors="coerce")
        frame = pd.concat([frame, new_rows], ignore_index=True)
    return frame


def _records_version(raw: RawData, drop: Collection[str], relabel: Mapping[str, str], hard: Collection[str],
                     added: Sequence[AddedRow]) -> list[dict[str, Any]]:
    ds = raw.ds
    drop, hard = set(drop), set(hard)
    out = []
    for rid, rec in zip(raw.ids, raw.records, strict=True):
        if rid in drop:
            continue
        rec = json.loads(json.dumps(rec))
        if rid in relabel:
            _set_record_label(ds, rec, relabel[rid])
        rec[HARD_COLUMN] = _is_true(rec.get(HARD_COLUMN, False)) or rid in hard
        out.append(rec)
    like_id = raw.records[0].get(ds.id_col) if ds.id_col is not None and raw.records else None
    for a, rec in zip(added, _new_records(ds, added, like_id), strict=True):
        rec[HARD_COLUMN] = a.hard
        out.append(rec)
    return out


def write_version(raw: RawData, out: Path, *, drop: Collection[str] = (), relabel: Mapping[str, str] | None = None,
                  hard: Collection[str] = (), added: Sequence[AddedRow] = ()) -> int:
    """Write DATA with the edits to `out` (same format; atomic). Returns the number of rows written."""
    ds = raw.ds
    check_out_path(ds, out)
    relabel = relabel or {}
    if raw.frame is not None:
        frame = _table_version(raw, drop, relabel, hard, added, text_flags=ds.fmt != "parquet")
        if ds.fmt == "parquet":
            write_with(out, lambda tmp: frame.to_parquet(tmp, index=False))
        else:
            write_with(out, lambda tmp: write_delimited(frame, tmp, "\t" if ds.fmt == "tsv" else ","))
        return len(frame)
    records = _records_version(raw, drop, relabel, hard, added)
    if raw.json_array:
        write_text(out, json.dumps(records, indent=2, ensure_ascii=False) + "\n")
    else:
        write_jsonl(out, records)
    return len(records)
