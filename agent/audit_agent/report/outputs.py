"""Write every output file of a run, atomically: findings.jsonl, summary.json, review_sample.csv,
deduplicated.<ext>, the plots and report.md. Layout only: the numbers come from the RunResult."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from audit_agent.checks import KINDS
from audit_agent.checks.balance import ClassBalance
from audit_agent.checks.review import ReviewSample
from audit_agent.dataset import Dataset
from audit_agent.errors import InputError
from audit_agent.findings import Finding
from audit_agent.io.atomic import write_json, write_jsonl, write_text, write_with
from audit_agent.io.dataset_writer import raw_ids, raw_records, write_delimited
from audit_agent.io.formats import decode_bytes, read_delimited, read_parquet
from audit_agent.jobs.guide import GuideResult
from audit_agent.jobs.paraphrase import summary_dict
from audit_agent.report import plots
from audit_agent.report.guide_outputs import write_guide_outputs
from audit_agent.report.paraphrase_outputs import write_review_batch
from audit_agent.report.review_outputs import write_row_fingerprints
from audit_agent.report.review_page import write_review_page
from audit_agent.report.trace_file import TRACE_FILE
from audit_agent.run_result import RunResult

REVIEW_SAMPLE = ReviewSample()
CLASS_BALANCE = ClassBalance()
FINDINGS_FILE = "findings.jsonl"
SUMMARY_FILE = "summary.json"
REVIEW_FILE = "review_sample.csv"
REPORT_FILE = "report.md"
DEDUP_STEM = "deduplicated"
VERSIONED = {"audit-agent": "audit-agent", "pandas": "pandas", "sklearn": "scikit-learn",
             "cleanlab": "cleanlab", "litellm": "litellm"}
FINDING_KEYS = ("id", "check", "severity", "rows", "labels", "message", "evidence", "source", "verified",
                "split")


def finding_record(f: Finding) -> dict[str, Any]:
    """One findings.jsonl line."""
    data = f.model_dump(mode="json")
    return {k: data[k] for k in FINDING_KEYS}


def versions() -> dict[str, str | None]:
    """Versions of the packages that shape the results (None when not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for key, dist in VERSIONED.items():
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    return out


def split_stats(ds: Dataset | None) -> dict[str, Any] | None:
    """What was loaded for one split: file, format, columns chosen, size, loader notes."""
    if ds is None:
        return None
    return {
        "file": str(ds.path),
        "format": ds.fmt,
        "kind": ds.kind,
        "rows": len(ds),
        "labels": len(ds.label_set),
        "columns": {"text": ds.text_col, "label": ds.label_col, "id": ds.id_col},
        "notes": list(ds.notes),
        "bad_rows": {k: len(v) for k, v in ds.bad_rows.items()},
    }


def build_summary(result: RunResult, files: dict[str, str] | None = None) -> dict[str, Any]:
    """summary.json: counts, dataset facts, check statuses, judge summary, versions, verdict."""
    by_check: dict[str, int] = {}
    for f in result.findings:
        by_check[f.check] = by_check.get(f.check, 0) + 1
    ctx = result.ctx
    return {
        "verdict": result.verdict,
        "counts": {
            "findings": len(result.findings),
            "by_severity": result.count_by_severity(),
            "by_check": dict(sorted(by_check.items())),
            "verified": sum(f.verified for f in result.findings),
            "unverified": sum(not f.verified for f in result.findings),
        },
        "dataset": {"train": split_stats(ctx.train), "eval": split_stats(ctx.eval), "real": split_stats(ctx.real),
                    "guide": ctx.guide_text is not None},
        "checks": [asdict(s) for s in result.statuses],
        "judge": asdict(result.judge) if result.judge is not None else None,
        "versions": versions(),
        "run_seconds": round(result.seconds, 3),
        "llm": asdict(result.llm) if result.llm is not None else None,
        "guide": guide_summary(result.guide) if result.guide is not None else None,
        "paraphrase": summary_dict(result.paraphrase) if result.paraphrase is not None else None,
        "skipped_jobs": [asdict(j) for j in result.skipped_jobs],
        "files": files or {},
    }


def review_frame(result: RunResult) -> pd.DataFrame | None:
    """The review sample: the `review_sample` finding's ordered row ids joined with the training rows,
    plus its empty reviewer columns. None when the check did not run."""
    kind = REVIEW_SAMPLE
    found = result.by_check(kind.name)
    if not found:
        return None
    f = found[0]
    frame = result.ctx.train.frame
    index = pd.Index(frame["id"].astype(str))
    positions = index.get_indexer(pd.Index(kind.sample_rows(f)))
    picked = frame.iloc[positions[positions >= 0]]
    out = pd.DataFrame({"id": picked["id"].astype(str).to_numpy(), "text": picked["text"].to_numpy(),
                        "label": picked["label"].to_numpy() if "label" in picked else None})
    for col in kind.reviewer_columns(f):
        out[str(col)] = ""
    return out


def drop_ids(result: RunResult) -> list[str]:
    """Row ids the findings say to leave out of the deduplicated copy (`FindingKind.drop_rows`)."""
    seen: dict[str, None] = {}
    for f in result.findings:
        kind = KINDS.get(f.check)
        for rid in kind.drop_rows(f) if kind is not None else []:
            seen[rid] = None
    return list(seen)


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


def write_plots(result: RunResult, out_dir: Path) -> dict[str, Path]:
    """Label counts (from the class_balance finding) and words per row by split."""
    out: dict[str, Path] = {}
    counts = CLASS_BALANCE.label_counts(result.findings)
    if counts:
        out["label_counts"] = plots.plot_label_counts(counts, out_dir / plots.LABEL_COUNTS_FILE)
    ctx = result.ctx
    splits = [("synthetic train", ctx.train.frame["text"])]
    if ctx.eval is not None:
        splits.append(("eval", ctx.eval.frame["text"]))
    if ctx.real is not None:
        splits.append(("real", ctx.real.frame["text"]))
    if len(ctx.train):
        out["lengths"] = plots.plot_lengths(splits, out_dir / plots.LENGTHS_FILE)
    return out


def guide_summary(guide: GuideResult) -> dict[str, Any]:
    """The guide job's numbers, as summary.json shows them."""
    return {"labels": guide.labels, "pairs": guide.pairs, "status_counts": guide.status_counts,
            "relabel_candidates": guide.relabel_candidates, "mind_reading_rows": guide.mind_reading_rows,
            "failed_checks": len(guide.failed_checks), "llm_calls": guide.llm_calls,
            "seconds": round(guide.seconds, 1), "notes": guide.notes}


def write_outputs(result: RunResult, out_dir: Path) -> dict[str, Path]:
    """Write every output file into `out_dir`; returns their paths by kind. report.md is written
    last, so it only links to files that exist. (trace.jsonl is streamed by `TraceFile` while the
    judge runs.)"""
    from audit_agent.report.markdown import render_report

    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {"findings": out_dir / FINDINGS_FILE}
    if result.judge is not None and (out_dir / TRACE_FILE).exists():
        paths["trace"] = out_dir / TRACE_FILE
    if result.guide is not None:
        guide = write_guide_outputs(out_dir, result.guide)
        paths.update({"guide": guide["guide"], "guide_diff": guide["diff"], "relabel": guide["relabel"],
                      "guide_checks": guide["checks"]})
    if result.paraphrase is not None:
        batch = write_review_batch(result.paraphrase, out_dir)
        paths.update({"paraphrases": batch["csv"], "paraphrases_jsonl": batch["jsonl"],
                      "paraphrase_summary": batch["summary"]})
    write_jsonl(paths["findings"], (finding_record(f) for f in result.findings))

    review = review_frame(result)
    if review is not None:
        paths["review_sample"] = out_dir / REVIEW_FILE
        write_with(paths["review_sample"], lambda tmp: review.to_csv(tmp, index=False))
        page = write_review_page(result.ctx, result.findings, out_dir)
        if page is not None:
            paths["review_page"] = page

    drop = drop_ids(result)
    dropped = 0
    if drop:
        paths["deduplicated"], dropped = write_deduplicated(result.ctx.train, drop, out_dir)

    paths.update(write_plots(result, out_dir))

    paths["rows"] = write_row_fingerprints(result.ctx.train, out_dir)
    paths["summary"] = out_dir / SUMMARY_FILE
    paths["report"] = out_dir / REPORT_FILE
    files = {k: p.name for k, p in paths.items()}
    summary = build_summary(result, files)
    summary["deduplicated_rows_dropped"] = dropped
    if result.facts is not None:
        summary["facts"] = result.facts.model_dump(mode="json")
    write_json(paths["summary"], summary)
    write_text(paths["report"], render_report(result, files=files, dropped=dropped))
    return paths
