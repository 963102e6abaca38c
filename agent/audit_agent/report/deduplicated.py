"""deduplicated.<ext>: the training file minus the dropped rows, in the input's own format and fields;
whole (`write_deduplicated`), or for a partitioned run chunk by chunk from the input file, never read
whole (`write_deduplicated_parts`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from audit_agent.dataset import Dataset
from audit_agent.engine.reader import _raw_chunks
from audit_agent.errors import InputError
from audit_agent.io.atomic import atomic_path, write_jsonl, write_text, write_with
from audit_agent.io.dataset_writer import raw_ids, raw_records, write_delimited
from audit_agent.io.formats import decode_bytes, read_delimited, read_parquet

DEDUP_STEM = "deduplicated"
CHUNK_ROWS = 200_000
_KEYS = ("audit-agent-id01", "audit-agent-id02")


class _IdSet:
    """Membership of row ids (as strings) by two 64-bit hashes, without a set of Python strings."""

    def __init__(self, ids: list[str]) -> None:
        values = np.asarray(ids, dtype=object)
        h1 = pd.util.hash_array(values, hash_key=_KEYS[0], categorize=False)
        h2 = pd.util.hash_array(values, hash_key=_KEYS[1], categorize=False)
        order = np.argsort(h1, kind="stable")
        self.h1, self.h2 = h1[order], h2[order]

    def contains(self, ids: np.ndarray) -> np.ndarray:
        values = np.asarray(ids, dtype=object)
        q1 = pd.util.hash_array(values, hash_key=_KEYS[0], categorize=False)
        q2 = pd.util.hash_array(values, hash_key=_KEYS[1], categorize=False)
        if len(self.h1) == 0:
            return np.zeros(len(values), dtype=bool)
        pos = np.clip(np.searchsorted(self.h1, q1), 0, len(self.h1) - 1)
        return (self.h1[pos] == q1) & (self.h2[pos] == q2)


def write_deduplicated_parts(ds: Dataset, drop: list[str], out_dir: Path) -> tuple[Path, int]:
    """The training file minus the dropped rows, in the input's format and fields, written one chunk
    at a time; returns the path and how many rows were left out."""
    ext = ds.path.suffix.lower().lstrip(".") or "csv"
    lines = ext in ("jsonl", "ndjson")  # JSON Lines of any record shape (plain, chat, Alpaca)
    if ds.fmt not in ("csv", "tsv", "parquet") and not lines:
        return write_deduplicated(ds, drop, out_dir)  # a JSON array cannot be read in chunks
    path = out_dir / f"{DEDUP_STEM}.{ext}"
    dropped = _IdSet(drop)
    n_out = 0
    seen = 0
    if lines:
        return path, _jsonl_parts(ds, dropped, path)
    with atomic_path(path) as tmp:
        writer = None
        for chunk in _raw_chunks(ds.path, ds.fmt, CHUNK_ROWS, []):
            ids = (chunk[ds.id_col].astype(str).to_numpy(dtype=object) if ds.id_col
                   else np.array([str(i) for i in range(seen, seen + len(chunk))], dtype=object))
            seen += len(chunk)
            out = dropped.contains(ids)
            n_out += int(out.sum())
            kept = chunk[~out]
            writer = _append(tmp, ds.fmt, kept, writer)
        if writer is not None and hasattr(writer, "close"):
            writer.close()
    return path, n_out


def _append(tmp: Path, fmt: str, frame: pd.DataFrame, writer: object) -> object:
    """Append one chunk; returns the open writer (a Parquet writer, or True once a text file has a header)."""
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table.cast(writer.schema))  # type: ignore[attr-defined]
        return writer
    import pyarrow as pa
    from pyarrow import csv as pa_csv

    sep = "\t" if fmt == "tsv" else ","
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with tmp.open("ab") as fh:
        pa_csv.write_csv(table, fh, write_options=pa_csv.WriteOptions(delimiter=sep, include_header=writer is None))
    return True


def _jsonl_parts(ds: Dataset, dropped: _IdSet, path: Path) -> int:
    """JSON Lines: records kept line by line, written as `write_jsonl` writes them."""
    n_out = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as out, \
            ds.path.open("r", encoding="utf-8-sig", errors="replace") as fh:
        batch: list[dict[str, object]] = []

        def flush(start: int) -> int:
            ids = np.array([str(r.get(ds.id_col)) if ds.id_col else str(start + i) for i, r in enumerate(batch)],
                           dtype=object)
            gone = dropped.contains(ids)
            for rec, drop in zip(batch, gone.tolist(), strict=True):
                if not drop:
                    out.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
            return int(gone.sum())

        seen = 0
        for line in fh:
            if line.strip():
                batch.append(json.loads(line))
            if len(batch) >= CHUNK_ROWS:
                n_out += flush(seen)
                seen += len(batch)
                batch = []
        n_out += flush(seen)
    return n_out


def write_deduplicated(ds: Dataset, drop: list[str], out_dir: Path) -> tuple[Path, int]:
    """The training file minus the dropped rows, in the input's own format and with its original
    fields; falls back to id/text/label CSV when the input cannot be re-read. Returns the path and
    how many rows were left out."""
    ext = ds.path.suffix.lower().lstrip(".") or "csv"
    path = out_dir / f"{DEDUP_STEM}.{ext}"
    dropped = set(drop)
    try:
        if ds.fmt in ("csv", "tsv"):
            text, _ = decode_bytes(ds.path, ds.path.read_bytes())
            raw, _ = read_delimited(ds.path, text, ds.fmt)
            keep = ~raw_ids(len(raw), raw[ds.id_col] if ds.id_col else None).isin(dropped).to_numpy()
            n_out = int((~keep).sum())
            sep = "\t" if ds.fmt == "tsv" else ","
            write_with(path, lambda tmp: write_delimited(raw[keep], tmp, sep))
        elif ds.fmt == "parquet":
            raw = read_parquet(ds.path)
            keep = ~raw_ids(len(raw), raw[ds.id_col] if ds.id_col else None).isin(dropped).to_numpy()
            n_out = int((~keep).sum())
            write_with(path, lambda tmp: raw[keep].to_parquet(tmp, index=False))
        else:
            records = raw_records(ds)
            ids = [str(r.get(ds.id_col)) if ds.id_col else str(i) for i, r in enumerate(records)]
            kept = [r for r, rid in zip(records, ids, strict=True) if rid not in dropped]
            n_out = len(records) - len(kept)
            if ext == "json":
                write_text(path, json.dumps(kept, indent=2, ensure_ascii=False) + "\n")
            else:
                write_jsonl(path, kept)
    except (OSError, InputError, KeyError):
        path = out_dir / f"{DEDUP_STEM}.csv"
        frame = ds.frame[~ds.frame["id"].astype(str).isin(dropped)]
        n_out = len(ds.frame) - len(frame)
        write_with(path, lambda tmp: frame.to_csv(tmp, index=False))
    return path, n_out
