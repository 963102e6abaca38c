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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from audit_agent.api import Columns, _load_side, run_checks, select_checks
from audit_agent.checks import KINDS
from audit_agent.config import AuditConfig, EngineConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.engine import phrasing
from audit_agent.engine.base import Engine, LocalEngine
from audit_agent.engine.build import EngineResults, Partitions, add_partition, compute
from audit_agent.engine.features import EngineFeatures
from audit_agent.engine.reader import open_split, partition_rows
from audit_agent.features.classifier import LARGE_ROWS
from audit_agent.findings import Finding, Severity, sort_findings
from audit_agent.io.loader import load_dataset
from audit_agent.jobs.trace import TraceSink
from audit_agent.run_options import LLMJobs, Progress, no_progress
from audit_agent.run_result import CheckStatus, RunResult

ALL_ROWS = ("input_rows", "class_balance", "exact_duplicate", "near_duplicate", "conflicting_labels", "contamination",
            "real_in_train", "label_issue", "label_overlap", "repeated_opening", "repeated_ending", "review_sample")
FROM_KEYS = ("repeated_opening", "repeated_ending")
MAX_SUSPECTS_PER_FINDING = 50
MAX_SUSPECTS = 20_000


def make_engine(cfg: EngineConfig) -> Engine:
    """The engine `cfg.kind` names (`local` runs the partitioned stages in this process)."""
    if cfg.kind == "ray":
        from audit_agent.engine.ray_engine import RayEngine

        return RayEngine(cfg)
    return LocalEngine()


@dataclass
class EngineData:
    """What `run_audit_engine` reads: the split files (the training file partitioned) and the columns."""

    train: Path
    eval: Path | None = None
    real: Path | None = None
    guide: Path | None = None
    columns: Columns = field(default_factory=Columns)


def load_partitioned(engine: Engine, opts: EngineData, config: AuditConfig, progress: Progress = no_progress,
                     large_rows: int = LARGE_ROWS) -> tuple[AuditContext, EngineResults, int]:
    """Read the training split chunk by chunk into the engine (scanning as it arrives), load the small
    eval/real splits whole, and compute the engine's features. Returns the context (its frame is the
    loader's table of all rows), the results, and the number of partitions."""
    cols = opts.columns
    reader = open_split(opts.train, role="train", text_col=cols.text, label_col=cols.label,
                        id_col=cols.id, task_col=cols.task)
    parts = Partitions()
    frames: list[pd.DataFrame] = []
    progress("load", f"Reading {opts.train.name} into the engine", 0, None)
    read_started = time.time()
    large = True
    rows = partition_rows(reader.path, reader.fmt, config.engine.rows_per_partition, engine.workers)
    for frame in reader.partitions(rows):
        frames.append(frame)
        add_partition(engine, parts, frame, config, large)
        progress("load", f"Reading {opts.train.name} into the engine", len(frame), None)
    kind = reader.kind(cols.kind)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    del frames
    train = reader.dataset(frame, kind)
    if train.label_col is not None and kind == "classification":
        labels = train.frame["label"].dropna()
        if labels.nunique() < 2:
            train.notes.append(f"only one label ('{labels.iloc[0]}'): the checks that compare labels are skipped")
    eval_ds = _load_side(opts.eval, "eval", cols, train) if opts.eval is not None else None
    real_ds = _load_side(opts.real, "real", cols, train) if opts.real is not None else None
    guide_text = opts.guide.read_text(encoding="utf-8") if opts.guide is not None and opts.guide.exists() else None
    others = {name: ds.texts for name, ds in (("eval", eval_ds), ("real", real_ds)) if ds is not None}
    classification = kind == "classification" and train.has_labels

    def note(what: str) -> None:
        progress("engine", f"Engine: {what}", 0, None)

    note("scanning partitions")
    results = compute(engine, parts, config, train.frame["label"] if train.has_labels else None, classification,
                      others, note, large_rows)
    results.started = {"read": read_started, **results.started}
    progress("engine", "Engine: done", 1, 1)
    ctx = AuditContext(train=train, config=config, eval=eval_ds, real=real_ds, guide_text=guide_text)
    ctx.__dict__["features"] = EngineFeatures(ctx, results.neighbors, results.oof, results.issues)
    return ctx, results, len(parts.refs)


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
                   seconds: dict[str, float], started: dict[str, float] | None = None) -> Finding:
    """What ran where, for the report (`started`: each stage's wall-clock start, epoch seconds)."""
    where = (f"on a uniform sample of {min(sample_rows, n):,} of the {n:,} rows: {', '.join(sampled)}; every other "
             "check on all rows" if sampled else f"every check on all {n:,} rows")
    return Finding(check="engine", severity=Severity.INFO,
                   message=(f"ran on the {kind} engine ({workers} worker CPUs, {partitions} partitions); "
                            f"{where}"),
                   evidence={"engine": kind, "workers": workers, "partitions": partitions, "rows": n,
                             "checks_on_sample": sampled, "sample_rows": min(sample_rows, n),
                             "stage_seconds": {k: round(v, 2) for k, v in seconds.items()},
                             "stage_started": {k: round(v, 1) for k, v in (started or {}).items()}})


def run_audit_engine(data: EngineData, config: AuditConfig, *, checks: list[str] | None = None,
                     skip: list[str] | None = None, llm: bool = True, jobs: LLMJobs | None = None,
                     progress: Progress = no_progress, trace_sink: TraceSink | None = None,
                     engine: Engine | None = None) -> RunResult:
    """`audit()` with the row-parallel work on `engine` (default: the one `config.engine` names); the
    checks, the LLM jobs and the verdict run on the driver and give the same typed RunResult."""
    from audit_agent.jobs.runner import run_llm_jobs
    from audit_agent.review.run_facts import run_facts

    started = time.perf_counter()
    names = select_checks(checks or [], skip or [])
    engine = engine or make_engine(config.engine)
    try:
        try:
            ctx, results, n_parts = load_partitioned(engine, data, config, progress)
            workers = engine.workers
        finally:
            engine.close()  # a cluster started for this run is released before the driver's work
        results.started["checks"] = time.time()
        findings, statuses, sampled = run_engine_checks(ctx, results, names, progress, config.engine.sample_rows)
        findings.append(engine_finding(config.engine.kind, workers, n_parts, len(ctx.train), sampled,
                                       config.engine.sample_rows, results.seconds, results.started))
        statuses.append(CheckStatus("engine", "ran", findings=1, seconds=sum(results.seconds.values())))
        result = RunResult(ctx=ctx, findings=findings, statuses=statuses, seconds=0.0)
        if llm:
            llm_ctx = _local_context(ctx)
            if sampled:  # the judge's suspects join the sample it sees
                named = list(dict.fromkeys(str(r) for f in findings if f.check in KINDS and KINDS[f.check].is_label_suspect
                                           for r in f.rows[:MAX_SUSPECTS_PER_FINDING]))
                llm_ctx = sample_context(ctx, config.engine.sample_rows, config.seed, named[:MAX_SUSPECTS])
            on_sample = RunResult(ctx=llm_ctx, findings=list(findings), statuses=statuses, seconds=0.0)
            run_llm_jobs(on_sample, jobs or LLMJobs(guide_name=data.guide.name if data.guide else None), progress,
                         trace_sink)
            result.findings = on_sample.findings
            result.judge, result.guide, result.paraphrase = on_sample.judge, on_sample.guide, on_sample.paraphrase
            result.llm, result.skipped_jobs = on_sample.llm, on_sample.skipped_jobs
        result.findings = sort_findings(result.findings)
        result.facts = run_facts(ctx, result.findings)
        result.seconds = time.perf_counter() - started
    finally:
        engine.close()
    return result


def _local_context(ctx: AuditContext) -> AuditContext:
    """The same rows with locally computed features (the LLM jobs read the full probability matrix)."""
    return AuditContext(train=ctx.train, config=ctx.config, eval=ctx.eval, real=ctx.real, guide_text=ctx.guide_text)


def load_local(data: EngineData) -> Dataset:
    """The loader's whole-file read (for comparisons)."""
    cols = data.columns
    return load_dataset(data.train, role="train", kind=cols.kind, text_col=cols.text, label_col=cols.label,
                        id_col=cols.id, task_col=cols.task)
