"""Raw readers: bytes on disk -> a pandas frame of strings, one per supported format."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from audit_agent.errors import InputError

TABLE_EXTS = {".csv": "csv", ".tsv": "tsv", ".txt": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl",
              ".json": "json", ".parquet": "parquet", ".pq": "parquet"}


def detect_format(path: Path) -> str:
    """Format from the file extension (csv, tsv, jsonl, json, parquet)."""
    fmt = TABLE_EXTS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(path, f"unsupported file type '{path.suffix}' (use .csv, .tsv, .jsonl, .json or .parquet)")
    return fmt


def decode_bytes(path: Path, raw: bytes) -> tuple[str, list[str]]:
    """Decode as UTF-8 (BOM stripped). Files that are not UTF-8 at all are read as Windows-1252 /
    Latin-1; UTF-8 files with a few broken byte sequences keep their text with U+FFFD in place."""
    notes: list[str] = []
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
        notes.append("removed a UTF-8 byte-order mark")
    try:
        return raw.decode("utf-8"), notes
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    text = raw.decode("utf-8", errors="replace")
    valid_multibyte = any(ord(ch) > 127 and ch != "\ufffd" for ch in text)
    if not valid_multibyte:
        try:
            decoded = raw.decode("cp1252")
            notes.append("not UTF-8: decoded as Windows-1252/Latin-1")
        except UnicodeDecodeError:
            decoded = raw.decode("latin-1")
            notes.append("not UTF-8: decoded as Latin-1")
        return decoded, notes
    line = raw[:first_bad].count(b"\n") + 1
    bad = text.count("\ufffd")
    notes.append(f"{bad} undecodable byte sequence(s) replaced with U+FFFD (first on line {line})")
    return text, notes


def sniff_delimiter(sample: str, fmt: str, notes: list[str]) -> str:
    """The delimiter of a CSV/TSV file from its first lines; a note when it is not the format's own."""
    default = "\t" if fmt == "tsv" else ","
    try:
        sep = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        sep = default
    if sep != default:
        notes.append(f"delimiter detected as {sep!r}")
    return sep


@contextmanager
def table_errors(path: Path, fmt: str) -> Iterator[None]:
    """pandas' errors while reading a CSV/TSV file as one-line `InputError`s (empty file, ragged rows)."""
    try:
        yield
    except pd.errors.EmptyDataError:
        raise InputError(path, "file is empty") from None
    except pd.errors.ParserError as exc:
        msg = str(exc)
        detail = msg.split("C error:")[-1].strip() if "C error:" in msg else msg
        raise InputError(path, f"malformed {fmt.upper()}: {detail} (ragged rows or an unclosed quote)") from None


def check_column_names(path: Path, columns: Iterable[Any]) -> None:
    """Refuse a header that names a column twice (pandas renames the second `x` to `x.1`)."""
    cols = [str(c) for c in columns]
    dupes = sorted({c.split(".")[0] for c in cols if "." in c and c.split(".")[0] in cols})
    if dupes:
        raise InputError(path, f"duplicate column name(s): {', '.join(dupes)}", column=dupes[0])


def read_delimited(path: Path, text: str, fmt: str) -> tuple[pd.DataFrame, list[str]]:
    """CSV/TSV with the delimiter sniffed; ragged rows are an error naming the line."""
    notes: list[str] = []
    sep = sniff_delimiter("\n".join(text.splitlines()[:50]), fmt, notes)
    with table_errors(path, fmt):
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                            na_values=[""], engine="c")
    check_column_names(path, frame.columns)
    return frame, notes


def json_record(path: Path, lineno: int, line: str) -> dict[str, Any]:
    """One line of a JSON Lines file as its object; a broken line is an error naming its line number."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"line {lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise InputError(path, f"line {lineno}: expected a JSON object, got {type(obj).__name__}")
    return obj


def read_jsonl(path: Path, text: str) -> list[dict[str, Any]]:
    """One JSON object per line; a broken line is an error naming its line number."""
    return [json_record(path, lineno, line) for lineno, line in enumerate(text.splitlines(), start=1)
            if line.strip()]


def read_json(path: Path, text: str) -> list[dict[str, Any]]:
    """A JSON array of objects (Alpaca style), or JSON Lines saved as .json."""
    stripped = text.lstrip()
    if not stripped:
        raise InputError(path, "file is empty")
    if not stripped.startswith("["):
        return read_jsonl(path, text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not all(isinstance(x, dict) for x in data):
        raise InputError(path, "expected a JSON array of objects")
    return data


def read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types; all mean the same to the user
        raise InputError(path, f"cannot read Parquet: {str(exc).splitlines()[0][:200]}") from None
