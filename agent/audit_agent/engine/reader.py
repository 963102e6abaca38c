"""Read one split in chunks (CSV/TSV, JSONL, Parquet) into validated partitions, with the same
column choices, row checks and ids as `io.loader.load_dataset`, never holding the raw file whole.

Each partition is the loader's table (`id`, `text`, `label`[, `task`]) for a run of consecutive
rows; `start` is the position of its first kept row in the whole split.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from audit_agent.dataset import Dataset, TaskKind
from audit_agent.errors import InputError
from audit_agent.io.formats import (
    check_column_names,
    detect_format,
    json_record,
    sniff_delimiter,
    table_errors,
)
from audit_agent.io.loader import (
    ID_CANDIDATES,
    LABEL_CANDIDATES,
    TASK_CANDIDATES,
    TEXT_CANDIDATES,
    Role,
    _looks_numeric,
    _pick,
    _records_to_frame,
    _validate_rows,
)


@dataclass
class Columns:
    """The columns chosen on the first chunk, used for every chunk."""

    text: str
    label: str | None
    id: str | None
    task: str | None


@dataclass
class SplitReader:
    """State of one split being read: the choices made on its first chunk and what was found so far."""

    path: Path
    role: Role
    labels_required: bool
    given: dict[str, str | None]
    fmt: str = "csv"
    cols: Columns | None = None
    notes: list[str] = field(default_factory=list)
    bad_rows: dict[str, list[str]] = field(default_factory=dict)
    raw_rows: int = 0
    kept_rows: int = 0
    id_hashes: list[np.ndarray] = field(default_factory=list)
    label_counts: pd.Series | None = None

    def partitions(self, rows: int) -> Iterator[pd.DataFrame]:
        """Validated partitions of at most `rows` kept rows (plus dropped ones), in file order."""
        formats: list[str] = []
        for raw in _raw_chunks(self.path, self.fmt, rows, self.notes, formats):
            if formats and self.fmt in ("jsonl", "json"):
                self.fmt = formats[0]  # chat / alpaca records, as the loader names them
            if raw.empty:
                continue
            raw.columns = [str(c) for c in raw.columns]
            if self.cols is None:
                self.cols = self._choose(raw)
            out = self._table(raw)
            if len(out):
                yield out
        if self.raw_rows == 0:
            raise InputError(self.path, "no data rows (only a header?)")
        if self.kept_rows == 0:
            raise InputError(self.path, "every row has an empty text", column=self.cols.text if self.cols else None)
        self._check_ids()

    def _choose(self, raw: pd.DataFrame) -> Columns:
        g = self.given
        tcol = _pick(self.path, raw, g["text"], TEXT_CANDIDATES, "text", True, self.notes, set())
        assert tcol is not None
        lcol = _pick(self.path, raw, g["label"], LABEL_CANDIDATES, "label", self.labels_required, self.notes, {tcol})
        id_col = g["id"]
        if id_col is not None and id_col not in raw.columns:
            raise InputError(self.path, f"no id column '{id_col}'", column=id_col)
        if id_col is None:
            lower = {c.lower().strip(): c for c in raw.columns if c not in {tcol, lcol or ""}}
            id_col = next((lower[c] for c in ID_CANDIDATES if c in lower), None)
            if id_col is not None:
                self.notes.append(f"id column: '{id_col}' (auto-detected)")
        kcol = _pick(self.path, raw, g["task"], TASK_CANDIDATES, "task", False, self.notes, {tcol, lcol or ""})
        if _looks_numeric(raw[tcol]):
            raise InputError(self.path, "holds numbers, not text; choose the text column with --text-col", column=tcol)
        return Columns(tcol, lcol, id_col, kcol)

    def _table(self, raw: pd.DataFrame) -> pd.DataFrame:
        cols = self.cols
        assert cols is not None
        for name in (cols.text, cols.label, cols.id, cols.task):
            if name is not None and name not in raw.columns:
                raise InputError(self.path, f"column '{name}' is missing after row {self.raw_rows}", column=name)
        bad: dict[str, list[str]] = {}
        if "_no_assistant" in raw.columns:
            missing = np.flatnonzero(raw["_no_assistant"].astype(bool).to_numpy()) + self.raw_rows
            if len(missing):
                bad["no_assistant_turn"] = [str(i) for i in missing]
        index = pd.RangeIndex(self.raw_rows, self.raw_rows + len(raw))
        out = pd.DataFrame(index=index)
        if cols.id is not None:
            ids = raw[cols.id]
            if ids.isna().any():
                raise InputError(self.path, "an id value is empty", row=int(self.raw_rows + np.argmax(ids.isna())),
                                 column=cols.id)
            out["id"] = ids.astype(str).to_numpy()
            self.id_hashes.append(pd.util.hash_array(out["id"].to_numpy(dtype=object)))
        else:
            out["id"] = np.arange(self.raw_rows, self.raw_rows + len(raw))
        out["text"] = raw[cols.text].to_numpy(dtype=object)
        if cols.label is not None:
            out["label"] = raw[cols.label].to_numpy(dtype=object)
        if cols.task is not None:
            out["task"] = raw[cols.task].astype(str).to_numpy()
        self.raw_rows += len(raw)
        _validate_rows(out, bad, has_label=cols.label is not None)
        for kind, rows in bad.items():
            self.bad_rows.setdefault(kind, []).extend(rows)
        out["text"] = out["text"].astype(str)
        if cols.label is not None:
            out["label"] = out["label"].astype(object).where(out["label"].notna(), None)
            counts = out["label"].dropna().astype(str).value_counts()
            self.label_counts = counts if self.label_counts is None else self.label_counts.add(counts, fill_value=0)
        out = out.reset_index(drop=True)
        self.kept_rows += len(out)
        return out

    def _check_ids(self) -> None:
        """Ids must be unique across the whole split (as the loader requires)."""
        if not self.id_hashes or self.cols is None:
            return
        hashes = np.concatenate(self.id_hashes)
        dup = pd.Series(hashes).duplicated(keep=False).to_numpy()
        if dup.any():
            raise InputError(self.path, f"{int(dup.sum())} rows share an id value with another row",
                             row=int(np.argmax(dup)), column=self.cols.id)

    def kind(self, forced: TaskKind | None) -> TaskKind:
        """Classification or generation, decided as the loader does but from the label counts of all rows."""
        if forced is not None:
            return forced
        counts = self.label_counts
        if counts is None or counts.empty:
            return "classification"
        n = float(counts.sum())
        words = np.array([len(str(v).split()) for v in counts.index])
        mean_words = float((words * counts.to_numpy()).sum() / n)
        if mean_words <= 4 and len(counts) <= max(50, 0.3 * n):
            return "classification"
        return "generation"

    def dataset(self, frame: pd.DataFrame, kind: TaskKind) -> Dataset:
        assert self.cols is not None
        return Dataset(path=self.path, frame=frame, kind=kind, text_col=self.cols.text, label_col=self.cols.label,
                       id_col=self.cols.id, fmt=self.fmt, notes=self.notes, bad_rows=self.bad_rows)


def open_split(path: Path | str, *, role: Role = "train", text_col: str | None = None, label_col: str | None = None,
               id_col: str | None = None, task_col: str | None = None, labels_required: bool = True) -> SplitReader:
    """A reader for `path`; `partitions(rows)` then yields its validated partitions."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a directory, expected a data file")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty")
    fmt = detect_format(path)
    return SplitReader(path, role, labels_required, {"text": text_col, "label": label_col, "id": id_col,
                                                     "task": task_col}, fmt=fmt)


def _raw_chunks(path: Path, fmt: str, rows: int, notes: list[str],
                formats: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """Raw chunks of the file; for JSON records, the record format found goes into `formats`."""
    if fmt == "parquet":
        yield from _parquet_chunks(path, rows)
    elif fmt in ("csv", "tsv"):
        yield from _delimited_chunks(path, fmt, rows, notes)
    else:
        yield from _record_chunks(path, rows, notes, formats if formats is not None else [])


def _parquet_chunks(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
    except Exception as exc:
        raise InputError(path, f"cannot read Parquet: {str(exc).splitlines()[0][:200]}") from None
    for batch in handle.iter_batches(batch_size=rows):
        yield batch.to_pandas()


def _delimited_chunks(path: Path, fmt: str, rows: int, notes: list[str]) -> Iterator[pd.DataFrame]:
    with path.open("r", encoding="utf-8-sig", errors="replace") as fh:
        head = "".join(line for _, line in zip(range(50), fh, strict=False))
    sep = sniff_delimiter(head, fmt, notes)
    with table_errors(path, fmt):
        reader = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""], engine="c",
                             chunksize=rows, encoding="utf-8-sig", encoding_errors="replace")
        first = True
        for chunk in reader:
            if first:
                check_column_names(path, chunk.columns)
                first = False
            yield chunk


def _record_chunks(path: Path, rows: int, notes: list[str], formats: list[str]) -> Iterator[pd.DataFrame]:
    """JSON Lines read line by line; a JSON array is read whole (it cannot be split) and cut into chunks."""
    with path.open("r", encoding="utf-8-sig", errors="replace") as fh:
        start = fh.read(4096).lstrip()
    if start.startswith("["):
        from audit_agent.io.formats import read_json

        records = read_json(path, path.read_text(encoding="utf-8-sig", errors="replace"))
        for i in range(0, len(records), rows):
            yield _framed(path, records[i:i + rows], notes if i == 0 else [], formats)
        return
    batch: list[dict[str, Any]] = []
    first = True
    with path.open("r", encoding="utf-8-sig", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            batch.append(json_record(path, lineno, line))
            if len(batch) >= rows:
                yield _framed(path, batch, notes if first else [], formats)
                batch, first = [], False
    if batch or first:
        if not batch:
            raise InputError(path, "file is empty")
        yield _framed(path, batch, notes if first else [], formats)


def _framed(path: Path, records: list[dict[str, Any]], notes: list[str], formats: list[str]) -> pd.DataFrame:
    frame, fmt = _records_to_frame(path, records, notes)
    if not formats:
        formats.append(fmt)
    return frame


MIN_PARTITION_ROWS = 20_000


def partition_rows(path: Path, fmt: str, most: int, workers: int) -> int:
    """Rows per partition: at most `most`, and small enough that every worker gets two partitions
    (estimated from the file: Parquet metadata, else the bytes of the first lines), but at least
    MIN_PARTITION_ROWS (a task must be worth sending)."""
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            estimate = pq.ParquetFile(path).metadata.num_rows
        else:
            with path.open("rb") as fh:
                head = [line for _, line in zip(range(2000), fh, strict=False)]
            per_line = max(1.0, sum(map(len, head)) / max(len(head), 1))
            estimate = int(path.stat().st_size / per_line)
    except Exception:  # an unreadable file is reported by the reader itself
        return most
    return min(most, max(MIN_PARTITION_ROWS, -(-estimate // (2 * workers))))
