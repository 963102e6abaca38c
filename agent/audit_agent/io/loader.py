"""Load one split into a `Dataset`: read the format, pick the columns, validate the rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pandas as pd

from audit_agent.dataset import Dataset, TaskKind
from audit_agent.errors import InputError
from audit_agent.io.formats import (
    decode_bytes,
    detect_format,
    read_delimited,
    read_json,
    read_jsonl,
    read_parquet,
)

TEXT_CANDIDATES = ("text", "prompt", "input", "utterance", "query", "question", "sentence", "message",
                   "content", "instruction")
LABEL_CANDIDATES = ("label", "category", "intent", "class", "target", "output", "labels", "response",
                    "answer", "completion")
TASK_CANDIDATES = ("task", "domain", "task_type")
ID_CANDIDATES = ("id", "row_id", "uid", "example_id", "_id")
MAX_TEXT_CHARS = 20_000
Role = Literal["train", "eval", "real"]


def _records_to_frame(path: Path, records: list[dict[str, Any]], notes: list[str]) -> tuple[pd.DataFrame, str]:
    """Chat fine-tuning records and Alpaca records become text/label columns; others stay as they are."""
    if not records:
        raise InputError(path, "file is empty")
    first = records[0]
    if "messages" in first:
        return _chat_frame(path, records, notes), "chat"
    if "instruction" in first and "output" in first:
        rows = []
        for rec in records:
            instruction = str(rec.get("instruction") or "")
            extra = str(rec.get("input") or "")
            text = f"{instruction}\n\n{extra}" if extra.strip() else instruction
            row = {k: v for k, v in rec.items() if k not in ("instruction", "input", "output")}
            row.update({"text": text, "label": rec.get("output")})
            rows.append(row)
        notes.append("Alpaca format: text = instruction (+ input), target = output")
        return pd.DataFrame(rows), "alpaca"
    return pd.DataFrame.from_records(records), "jsonl"


def _chat_frame(path: Path, records: list[dict[str, Any]], notes: list[str]) -> pd.DataFrame:
    rows = []
    for lineno, rec in enumerate(records, start=1):
        messages = rec.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise InputError(path, f"record {lineno}: 'messages' must be a list of objects")
        last_assistant = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
        user_turns = [m for m in messages[: last_assistant if last_assistant is not None else len(messages)]
                      if m.get("role") == "user"]
        text = user_turns[-1].get("content") if user_turns else None
        target = messages[last_assistant].get("content") if last_assistant is not None else None
        row = {k: v for k, v in rec.items() if k != "messages"}
        row.update({"text": text, "label": target, "_no_assistant": last_assistant is None})
        rows.append(row)
    notes.append("chat format: text = last user turn, target = assistant turn")
    return pd.DataFrame(rows)


def _pick(path: Path, frame: pd.DataFrame, given: str | None, candidates: tuple[str, ...], what: str,
          required: bool, notes: list[str], exclude: set[str]) -> str | None:
    cols = [str(c) for c in frame.columns]
    if given is not None:
        if given not in cols:
            raise InputError(path, f"no {what} column '{given}' (columns: {', '.join(cols[:20])})", column=given)
        return given
    lower = {c.lower().strip(): c for c in cols if c not in exclude}
    for cand in candidates:
        if cand in lower:
            chosen = lower[cand]
            notes.append(f"{what} column: '{chosen}' (auto-detected)")
            return chosen
    if required:
        raise InputError(path, f"cannot tell which column holds the {what} (columns: {', '.join(cols[:20])}); "
                               f"name it with --{what}-col")
    return None


def _detect_id_col(frame: pd.DataFrame, exclude: set[str], notes: list[str]) -> str | None:
    """A column named like an id whose values are unique and non-empty; else row positions."""
    lower = {c.lower().strip(): c for c in frame.columns if c not in exclude}
    for cand in ID_CANDIDATES:
        col = lower.get(cand)
        if col is None:
            continue
        values = frame[col]
        if values.notna().all() and values.astype(str).is_unique:
            notes.append(f"id column: '{col}' (auto-detected)")
            return col
        notes.append(f"column '{col}' looks like an id but is not unique: row positions are used as ids")
    return None


def _infer_kind(labels: pd.Series) -> TaskKind:
    """Class names are few and short; target texts are many and long."""
    values = labels.dropna().astype(str)
    if values.empty:
        return "classification"
    n_unique = values.nunique()
    mean_words = values.map(lambda v: len(v.split())).mean()
    if mean_words <= 4 and n_unique <= max(50, 0.3 * len(values)):
        return "classification"
    return "generation"


def _looks_numeric(values: pd.Series) -> bool:
    sample = values.dropna().astype(str).head(2000)
    if sample.empty:
        return False
    return bool(pd.to_numeric(sample, errors="coerce").notna().mean() > 0.9)


def load_dataset(path: Path | str, *, role: Role = "train", text_col: str | None = None,
                 label_col: str | None = None, id_col: str | None = None, task_col: str | None = None,
                 kind: TaskKind | None = None, labels_required: bool = True) -> Dataset:
    """Read `path` in any supported format into a validated `Dataset`.

    Unusable input raises `InputError` (file, row, column named). Rows that are bad but leave the
    rest usable (empty text, missing label, oversized text) are dropped or trimmed and listed in
    `Dataset.bad_rows` so a check can report them.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a directory, expected a data file")
    fmt = detect_format(path)
    notes: list[str] = []
    if fmt == "parquet":
        frame = read_parquet(path)
    else:
        raw = path.read_bytes()
        if not raw.strip():
            raise InputError(path, "file is empty")
        text, dec_notes = decode_bytes(path, raw)
        notes += dec_notes
        if fmt in ("csv", "tsv"):
            frame, more = read_delimited(path, text, fmt)
            notes += more
        else:
            records = read_jsonl(path, text) if fmt == "jsonl" else read_json(path, text)
            frame, fmt = _records_to_frame(path, records, notes)
    return _from_frame(path, frame, fmt, notes, role=role, text_col=text_col, label_col=label_col, id_col=id_col,
                       task_col=task_col, kind=kind, labels_required=labels_required)


def load_frame(frame: pd.DataFrame, *, name: str = "dataframe", role: Role = "train", text_col: str | None = None,
               label_col: str | None = None, id_col: str | None = None, task_col: str | None = None,
               kind: TaskKind | None = None, labels_required: bool = True) -> Dataset:
    """A pandas DataFrame as a validated `Dataset`, with the same column detection and checks as a
    file (errors name `name` where they would name the file)."""
    if not isinstance(frame, pd.DataFrame):
        raise InputError(Path(name), f"expected a pandas DataFrame, got {type(frame).__name__}")
    return _from_frame(Path(name), frame.reset_index(drop=True).copy(), "dataframe", [], role=role, text_col=text_col,
                       label_col=label_col, id_col=id_col, task_col=task_col, kind=kind,
                       labels_required=labels_required)


def _from_frame(path: Path, frame: pd.DataFrame, fmt: str, notes: list[str], *, role: Role, text_col: str | None,
                label_col: str | None, id_col: str | None, task_col: str | None, kind: TaskKind | None,
                labels_required: bool) -> Dataset:
    """Column detection and row validation shared by files and DataFrames."""
    if frame.empty:
        raise InputError(path, "no data rows (only a header?)")
    frame.columns = [str(c) for c in frame.columns]

    bad_rows: dict[str, list[str]] = {}
    if "_no_assistant" in frame.columns:
        missing = frame.index[frame["_no_assistant"].astype(bool)].tolist()
        if len(missing) == len(frame):
            raise InputError(path, "no record has an assistant turn: nothing to use as the target", row=0)
        frame = frame.drop(columns=["_no_assistant"])
        if missing:
            bad_rows["no_assistant_turn"] = [str(i) for i in missing]

    tcol = _pick(path, frame, text_col, TEXT_CANDIDATES, "text", True, notes, set())
    assert tcol is not None
    lcol = _pick(path, frame, label_col, LABEL_CANDIDATES, "label", labels_required, notes, {tcol})
    if id_col is not None and id_col not in frame.columns:
        raise InputError(path, f"no id column '{id_col}'", column=id_col)
    if id_col is None:
        id_col = _detect_id_col(frame, {tcol, lcol or ""}, notes)
    kcol = _pick(path, frame, task_col, TASK_CANDIDATES, "task", False, notes, {tcol, lcol or ""})

    if _looks_numeric(frame[tcol]):
        raise InputError(path, "holds numbers, not text; choose the text column with --text-col", column=tcol)

    out = pd.DataFrame(index=frame.index)
    if id_col is not None:
        ids = frame[id_col].astype(str)
        dup = ids[ids.duplicated(keep=False)]
        if not dup.empty:
            raise InputError(path, f"{dup.nunique()} id value(s) occur more than once (first: '{dup.iloc[0]}')",
                             row=int(dup.index[0]), column=id_col)
        out["id"] = ids.values
    else:
        out["id"] = range(len(frame))
    out["text"] = frame[tcol]
    if lcol is not None:
        out["label"] = frame[lcol]
    if kcol is not None:
        out["task"] = frame[kcol].astype(str)

    _validate_rows(out, bad_rows, has_label=lcol is not None)
    if len(out) == 0:
        raise InputError(path, "every row has an empty text", column=tcol)

    out["text"] = out["text"].astype(str)
    if lcol is not None:
        out["label"] = out["label"].astype(object).where(out["label"].notna(), None)
    out = out.reset_index(drop=True)
    data_kind: TaskKind = kind or (_infer_kind(out["label"]) if lcol is not None else "classification")
    ds = Dataset(path=path, frame=out, kind=data_kind, text_col=tcol, label_col=lcol, id_col=id_col,
                 fmt=fmt, notes=notes, bad_rows=bad_rows)
    if role == "train" and lcol is not None and data_kind == "classification":
        labels = out["label"].dropna()
        if labels.empty:
            raise InputError(path, "every label is empty", column=lcol)
        if labels.nunique() < 2:
            notes.append(f"only one label ('{labels.iloc[0]}'): the checks that compare labels are skipped")
    return ds


def _validate_rows(out: pd.DataFrame, bad_rows: dict[str, list[str]], *, has_label: bool) -> None:
    """Drop rows with no text, trim oversized texts, clean labels; list each kind of bad row."""
    text = out["text"]
    non_string = text.notna() & ~text.map(lambda v: isinstance(v, str))
    if non_string.any():
        out.loc[non_string, "text"] = text[non_string].map(str)
    empty = out["text"].isna() | (out["text"].astype(str).str.strip() == "")
    if empty.any():
        bad_rows["empty_text"] = out.loc[empty, "id"].astype(str).tolist()
        out.drop(index=out.index[empty], inplace=True)
    lengths = out["text"].str.len()
    big = lengths > MAX_TEXT_CHARS
    if big.any():
        bad_rows["oversized_text"] = out.loc[big, "id"].astype(str).tolist()
        out.loc[big, "text"] = out.loc[big, "text"].str.slice(0, MAX_TEXT_CHARS)
    if has_label:
        lab = out["label"]
        lab = lab.where(lab.isna(), lab.map(lambda v: v if isinstance(v, str) else _label_str(v)))
        stripped = lab.where(lab.isna(), lab.astype(str).str.strip())
        changed = lab.notna() & (stripped != lab)
        if changed.any():
            bad_rows["label_whitespace"] = out.loc[changed, "id"].astype(str).tolist()
        stripped = stripped.where(stripped != "", None)
        missing = stripped.isna()
        if missing.any():
            bad_rows["missing_label"] = out.loc[missing, "id"].astype(str).tolist()
        out["label"] = stripped


def _label_str(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
