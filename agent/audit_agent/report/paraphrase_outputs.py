"""Write the paraphrase review batch (paraphrases.jsonl, paraphrases.csv, paraphrase_summary.json),
read a reviewed batch back, and write the merged dataset copy. Layout only."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from audit_agent.dataset import Dataset
from audit_agent.errors import InputError
from audit_agent.io.atomic import write_json, write_jsonl, write_text, write_with
from audit_agent.io.dataset_writer import new_record
from audit_agent.jobs.paraphrase import ParaphraseResult, summary_dict

CSV_FILE = "paraphrases.csv"
JSONL_FILE = "paraphrases.jsonl"
SUMMARY_FILE = "paraphrase_summary.json"

REVIEW_COLUMNS = [
    "candidate_id", "source_id", "label", "status", "passed", "origin", "source_text", "candidate", "llm_text",
    "transforms", "style_hint",
    "polish_source", "polish_candidate", "typo_rate", "all_lowercase", "no_end_punct", "indirect_request",
    "emotional", "mentions_label_words", "p_label", "classifier_top", "judge", "checks_passed",
    "checks_failed", "reason",
]


def review_frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The review batch as a table with a fixed column order (missing values empty)."""
    frame = pd.DataFrame(list(records))
    for col in REVIEW_COLUMNS:
        if col not in frame.columns:
            frame[col] = ""
    return frame[REVIEW_COLUMNS]


def write_review_batch(result: ParaphraseResult, out_dir: Path) -> dict[str, Path]:
    """paraphrases.jsonl and paraphrases.csv (same rows and columns) plus paraphrase_summary.json."""
    paths = {"csv": out_dir / CSV_FILE, "jsonl": out_dir / JSONL_FILE, "summary": out_dir / SUMMARY_FILE}
    frame = review_frame(result.records)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(paths["jsonl"], frame.where(frame.notna(), None).to_dict(orient="records"))
    write_with(paths["csv"], lambda p: frame.to_csv(p, index=False))
    summary = summary_dict(result)
    summary.update({"model": result.model, "per_row": result.per_row, "max_rows": result.max_rows,
                    "how_to_accept": "set status to 'accepted' for the rows to keep, then run "
                                     "`audit-agent paraphrase --accept paraphrases.csv DATA --out DIR`"})
    write_json(paths["summary"], summary)
    return paths


def read_review_file(path: Path) -> pd.DataFrame:
    """A reviewed batch (.csv or .jsonl) as a table of strings."""
    if not path.exists():
        raise InputError(path, "review file not found")
    if path.suffix.lower() in (".jsonl", ".json"):
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise InputError(path, f"line {n}: not valid JSON ({exc.msg})") from None
        frame = pd.DataFrame(rows)
    else:
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputError(path, f"cannot read the review CSV: {str(exc).splitlines()[0][:200]}") from None
    for col in ("status", "candidate", "label"):
        if col not in frame.columns:
            raise InputError(path, f"no '{col}' column (is this a paraphrases.csv/jsonl file?)", column=col)
    return frame.fillna("")


def merged_path(ds: Dataset, out_dir: Path) -> Path:
    suffix = ds.path.suffix if ds.fmt in ("csv", "tsv", "jsonl", "json", "chat", "alpaca", "parquet") else ".csv"
    return out_dir / f"{ds.path.stem}.with_paraphrases{suffix or '.csv'}"


def write_merged(ds: Dataset, rows: Sequence[dict[str, str]], out_dir: Path) -> Path:
    """The original data file's rows unchanged, then one new row per accepted paraphrase, written to
    a new file in `out_dir` in the original's format. The original file is only read."""
    out = merged_path(ds, out_dir)
    if out.resolve() == ds.path.resolve():
        raise InputError(ds.path, "refusing to overwrite the original dataset: choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    new = [new_record(ds, r["text"], r["label"]) for r in rows]
    if ds.fmt == "parquet":
        frame = pd.concat([pd.read_parquet(ds.path), pd.DataFrame(new)], ignore_index=True)
        write_with(out, lambda p: frame.to_parquet(p, index=False))
    elif ds.fmt not in ("csv", "tsv"):
        original = ds.path.read_text(encoding="utf-8")
        if original.lstrip().startswith("["):
            data = json.loads(original)
            write_text(out, json.dumps([*data, *new], ensure_ascii=False, indent=2) + "\n")
        else:
            if original and not original.endswith("\n"):
                original += "\n"
            write_text(out, original + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in new))
    else:
        from audit_agent.io.formats import decode_bytes, read_delimited

        text, _ = decode_bytes(ds.path, ds.path.read_bytes())
        original_frame, _ = read_delimited(ds.path, text, ds.fmt)
        frame = pd.concat([original_frame, pd.DataFrame(new)], ignore_index=True).fillna("")
        sep = "\t" if ds.fmt == "tsv" else ","
        write_with(out, lambda p: frame.to_csv(p, index=False, sep=sep))
    return out
