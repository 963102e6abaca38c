"""`audit-agent run --engine ray`: read the splits in partitions into the engine, compute the shared
features there, then run the same checks, agent loop and report on the driver.

Which checks see which rows:
- every row, from the engine's results: input_rows, class_balance, exact_duplicate, near_duplicate,
  conflicting_labels, contamination, real_in_train, label_issue, label_overlap, repeated_opening,
  repeated_ending (classification and unlabelled data), review_sample;
- a uniform, seeded sample of `engine.sample_rows` rows when the split is larger (they need every
  text in memory): template_frame, label_leak, coverage_gap, real_gap, eval_too_clean, pilot_gap,
  and the judge, guide and paraphrase jobs. Below that size they see every row.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import Progress

from audit_agent.config import AuditConfig, EngineConfig
from audit_agent.dataset import AuditContext, Dataset
from audit_agent.engine import phrasing
from audit_agent.engine.base import Engine, LocalEngine
from audit_agent.engine.build import EngineResults, Partitions, add_partition, compute
from audit_agent.engine.features import EngineFeatures
from audit_agent.engine.reader import open_split, partition_rows
from audit_agent.features.classifier import LARGE_ROWS
from audit_agent.findings import Finding, Severity, sort_findings
from audit_agent.io.loader import load_dataset
from audit_agent.pipeline import (
    DataOptions,
    RunOptions,
    _step,
    make_progress,
    run_checks,
    run_llm_jobs,
    select_checks,
)
from audit_agent.run_result import CheckStatus, RunResult

ALL_ROWS = ("input_rows", "class_balance", "exact_duplicate", "near_duplicate", "conflicting_labels", "contamination",
            "real_in_train", "label_issue", "label_overlap", "repeated_opening", "repeated_ending", "review_sample")
FROM_KEYS = ("repeated_opening", "repeated_ending")
SUSPECT_CHECKS = ("label_issue", "conflicting_labels", "label_overlap", "near_duplicate", "template_frame")
MAX_SUSPECTS_PER_FINDING = 50
MAX_SUSPECTS = 20_000


def make_engine(cfg: EngineConfig) -> Engine:
    """The engine `cfg.kind` names (`local` runs the partitioned stages in this process)."""
    if cfg.kind == "ray":
        from audit_agent.engine.ray_engine import RayEngine

        return RayEngine(cfg)
    return LocalEngine()


def load_partitioned(engine: Engine, opts: DataOptions, config: AuditConfig, progress: Progress,
                     large_rows: int = LARGE_ROWS) -> tuple[AuditContext, EngineResults, int]:
    """Read the training split chunk by chunk into the engine (scanning as it arrives), load the small
    eval/real splits whole, and compute the engine's features. Returns the context (its frame is the
    loader's table of all rows), the results, and the number of partitions."""
    reader = open_split(opts.data, role="train", text_col=opts.text_col, label_col=opts.label_col,
                        id_col=opts.id_col, task_col=opts.task_col)
    parts = Partitions()
    frames: list[pd.DataFrame] = []
    task = progress.add_task(f"Reading {opts.data.name} into the engine", total=None)
    large = True
    rows = partition_rows(reader.path, reader.fmt, config.engine.rows_per_partition, engine.workers)
    for frame in reader.partitions(rows):
        frames.append(frame)
        add_partition(engine, parts, frame, config, large)
        progress.update(task, advance=len(frame))
    kind = reader.kind(opts.kind)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    del frames
    train = reader.dataset(frame, kind)
    if train.label_col is not None and kind == "classification":
        labels = train.frame["label"].dropna()
        if labels.nunique() < 2:
            from audit_agent.errors import InputError

            raise InputError(train.path, "a classifier needs two or more labels", column=train.label_col)
    side = {"text_col": opts.text_col or train.text_col, "label_col": opts.label_col, "id_col": opts.id_col}
    eval_ds = _side(opts.eval, "eval", side, train)
    real_ds = _side(opts.real, "real", side, train)
    guide_text = opts.guide.read_text(encoding="utf-8") if opts.guide is not None and opts.guide.exists() else None
    others = {name: ds.texts for name, ds in (("eval", eval_ds), ("real", real_ds)) if ds is not None}
    classification = kind == "classification" and train.has_labels

    def note(what: str) -> None:
        progress.update(task, description=f"Engine: {what}")

    progress.update(task, description="Engine: scanning partitions")
    results = compute(engine, parts, config, train.frame["label"] if train.has_labels else None, classification,
                      others, note, large_rows)
    progress.update(task, description="Engine: done")
    ctx = AuditContext(train=train, config=config, eval=eval_ds, real=real_ds, guide_text=guide_text)
    ctx.__dict__["features"] = EngineFeatures(ctx, results.neighbors, results.oof, results.issues)
    return ctx, results, len(parts.refs)


def _side(path: Path | None, role: Any, cols: dict[str, str | None], train: Dataset) -> Dataset | None:
    if path is None:
        return None
    from audit_agent.pipeline import _load_side

    return _load_side(path, role, cols, train)


def sample_context(ctx: AuditContext, rows: int, seed: int, include: list[str] | None = None) -> AuditContext:
    """A context whose training split is a uniform, seeded sample of `rows` rows plus the rows with
    the ids in `include` (ids unchanged), with features computed locally on it."""
    n = len(ctx.train)
    picked = np.arange(n) if n <= rows else np.random.default_rng(seed).choice(n, rows, replace=False)
    if include:
        where = pd.Index(ctx.train.frame["id"].astype(str)).get_indexer(pd.Index(include))
        picked = np.concatenate([picked, where[where >= 0]])
    picked = np.unique(picked)
    train = ctx.train
    frame = train.frame.iloc[picked].reset_index(drop=True)
    sample = Dataset(path=train.path, frame=frame, kind=train.kind, text_col=train.text_col,
                     label_col=train.label_col, id_col=train.id_col, fmt=train.fmt, notes=train.notes,
                     bad_rows=train.bad_rows)
    return AuditContext(train=sample, config=ctx.config, eval=ctx.eval, real=ctx.real, guide_text=ctx.guide_text)


def run_engine_checks(ctx: AuditContext, results: EngineResults, names: list[str], progress: Progress,
                      sample_rows: int) -> tuple[list[Finding], list[CheckStatus], list[str]]:
    """Run every selected check on the rows it can see; returns findings, statuses and the checks that
    ran on a sample."""
    n = len(ctx.train)
    generation = ctx.train.kind == "generation"
    full = [c for c in names if c in ALL_ROWS and not (generation and c in FROM_KEYS)]
    rest = [c for c in names if c not in full]
    keyed = [c for c in full if c in FROM_KEYS]
    findings, statuses = run_checks(ctx, [c for c in full if c not in keyed], progress)
    for name in keyed:
        start = time.perf_counter()
        found = (phrasing.repeated_opening(ctx, results.opening) if name == "repeated_opening"
                 else phrasing.repeated_ending(ctx, results.ending))
        findings.extend(found)
        statuses.append(CheckStatus(name, "ran", findings=len(found), seconds=time.perf_counter() - start))
    sampled_ctx = ctx if n <= sample_rows else sample_context(ctx, sample_rows, ctx.config.seed)
    if rest:
        more, more_statuses = run_checks(sampled_ctx, rest, progress)
        findings.extend(more)
        statuses.extend(more_statuses)
    order = {name: i for i, name in enumerate(names)}
    statuses.sort(key=lambda s: order.get(s.name, len(order)))
    sampled = rest if n > sample_rows else []
    return findings, statuses, sampled


def engine_finding(kind: str, workers: int, partitions: int, n: int, sampled: list[str], sample_rows: int,
                   seconds: dict[str, float]) -> Finding:
    """What ran where, for the report."""
    where = (f"on a uniform sample of {min(sample_rows, n):,} of the {n:,} rows: {', '.join(sampled)}; every other "
             "check on all rows" if sampled else f"every check on all {n:,} rows")
    return Finding(check="engine", severity=Severity.INFO,
                   message=(f"ran on the {kind} engine ({workers} worker CPUs, {partitions} partitions); "
                            f"{where}"),
                   evidence={"engine": kind, "workers": workers, "partitions": partitions, "rows": n,
                             "checks_on_sample": sampled, "sample_rows": min(sample_rows, n),
                             "stage_seconds": {k: round(v, 2) for k, v in seconds.items()}})


def run_audit_engine(opts: RunOptions, config: AuditConfig, console: Console,
                     engine: Engine | None = None) -> RunResult:
    """`run_audit` with the row-parallel work on `engine` (default: the one `config.engine` names)."""
    from audit_agent.engine.outputs import write_outputs_streamed

    started = time.perf_counter()
    names = select_checks(opts.only_checks, opts.skip_checks)
    engine = engine or make_engine(config.engine)
    try:
        with make_progress(console) as progress:
            try:
                ctx, results, n_parts = load_partitioned(engine, opts.data, config, progress)
                workers = engine.workers
            finally:
                engine.close()  # a cluster started for this run is released before the driver's work
            findings, statuses, sampled = run_engine_checks(ctx, results, names, progress,
                                                                         config.engine.sample_rows)
            findings.append(engine_finding(config.engine.kind, workers, n_parts, len(ctx.train), sampled,
                                           config.engine.sample_rows, results.seconds))
            statuses.append(CheckStatus("engine", "ran", findings=1, seconds=sum(results.seconds.values())))
            judge = None
            extra: dict[str, Any] = {"engine": findings[-1].evidence}
            if opts.use_llm:
                llm_ctx = _local_context(ctx)
                if sampled:  # the judge's suspects join the sample it sees
                    named = list(dict.fromkeys(str(r) for f in findings if f.check in SUSPECT_CHECKS
                                               for r in f.rows[:MAX_SUSPECTS_PER_FINDING]))
                    llm_ctx = sample_context(ctx, config.engine.sample_rows, config.seed, named[:MAX_SUSPECTS])
                judge_findings, judge, more = run_llm_jobs(llm_ctx, findings, opts, progress, console)
                findings.extend(judge_findings)
                extra.update(more)
            result = RunResult(ctx=ctx, findings=sort_findings(findings), statuses=statuses,
                               seconds=time.perf_counter() - started, judge=judge, extra=extra)
            with _step(progress, "Writing the report"):
                write_outputs_streamed(result, opts.out_dir)
    finally:
        engine.close()
    return result


def _local_context(ctx: AuditContext) -> AuditContext:
    """The same rows with locally computed features (the LLM jobs read the full probability matrix)."""
    return AuditContext(train=ctx.train, config=ctx.config, eval=ctx.eval, real=ctx.real, guide_text=ctx.guide_text)


def load_local(opts: DataOptions) -> Dataset:
    """The loader's whole-file read (for comparisons)."""
    return load_dataset(opts.data, role="train", kind=opts.kind, text_col=opts.text_col, label_col=opts.label_col,
                        id_col=opts.id_col, task_col=opts.task_col)
