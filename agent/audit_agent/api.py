"""The library API: `audit(train, eval=None, real=None, ...)` on file paths or pandas DataFrames.

It loads the data, runs the deterministic checks, then (with `llm=True`) the judge, the guide
rewrite and the paraphrase batch, each within its share of the one LLM budget, and returns an
`AuditResult`: the findings and a per-row issue table as DataFrames, plus the typed `RunResult` the
report layer renders. It prints nothing and writes nothing unless you call `AuditResult.write`.
The CLI's `run` is this function plus a progress display and `write`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from audit_agent.checks import KINDS, REGISTRY
from audit_agent.config import AuditConfig, load_config
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset, TaskKind
from audit_agent.errors import ConfigError, InputError
from audit_agent.findings import Finding, sort_findings
from audit_agent.io.loader import Role, load_dataset, load_frame
from audit_agent.jobs.runner import run_llm_jobs
from audit_agent.review.run_facts import run_facts
from audit_agent.run_options import LLMJobs, Progress, no_progress
from audit_agent.run_result import CheckStatus, JobSkip, LLMUsage, RunResult

if TYPE_CHECKING:
    from audit_agent.jobs.trace import TraceSink

DataInput = str | Path | pd.DataFrame


@dataclass
class Columns:
    """Which columns hold the text, label, id and task (None = detect)."""

    text: str | None = None
    label: str | None = None
    id: str | None = None
    task: str | None = None
    kind: TaskKind | None = None


def _load(data: DataInput, role: Role, cols: Columns, *, labels_required: bool, kind: TaskKind | None) -> Dataset:
    kwargs: dict[str, Any] = {"role": role, "text_col": cols.text, "label_col": cols.label, "id_col": cols.id,
                              "kind": kind, "labels_required": labels_required}
    if role == "train":
        kwargs["task_col"] = cols.task
    if isinstance(data, pd.DataFrame):
        return load_frame(data, name=f"{role} DataFrame", **kwargs)
    return load_dataset(Path(data), **kwargs)


def _load_side(data: DataInput, role: Role, cols: Columns, train: Dataset) -> Dataset:
    """Eval and real splits: labels optional; columns default to what the training set used, and
    are detected afresh when the side file names them differently."""
    side = Columns(text=cols.text or train.text_col, label=cols.label, id=cols.id)
    try:
        return _load(data, role, side, labels_required=False, kind=train.kind)
    except InputError as exc:
        if any(f"no {what} column" in str(exc) for what in ("text", "label", "id")):
            return _load(data, role, Columns(), labels_required=False, kind=train.kind)
        raise


def _guide_text(guide: str | Path | None) -> str | None:
    if guide is None:
        return None
    path = Path(guide)
    if not path.exists():
        raise InputError(path, "guide file not found")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(path, "guide is not UTF-8 text") from None


def load_context(train: DataInput, eval: DataInput | None = None, real: DataInput | None = None, *,
                 guide: str | Path | None = None, config: AuditConfig | None = None,
                 columns: Columns | None = None, progress: Progress = no_progress) -> AuditContext:
    """Load the training set and the optional eval/real splits with the same column choices."""
    cols = columns or Columns()
    progress("load", "Loading the training data", 0, 1)
    train_ds = _load(train, "train", cols, labels_required=True, kind=cols.kind)
    eval_ds = _load_side(eval, "eval", cols, train_ds) if eval is not None else None
    real_ds = _load_side(real, "real", cols, train_ds) if real is not None else None
    progress("load", "Loaded", 1, 1)
    return AuditContext(train=train_ds, config=config or AuditConfig(), eval=eval_ds, real=real_ds,
                        guide_text=_guide_text(guide))


def select_checks(only: Sequence[str] = (), skip: Sequence[str] = ()) -> list[str]:
    """Registered check names to run, validated against the registry."""
    for name in [*only, *skip]:
        if name not in REGISTRY:
            raise ConfigError(f"unknown check '{name}' (known: {', '.join(sorted(REGISTRY))})")
    names = list(only) or sorted(REGISTRY)
    return [n for n in names if n not in skip]


def run_checks(ctx: AuditContext, names: Sequence[str], progress: Progress = no_progress
               ) -> tuple[list[Finding], list[CheckStatus]]:
    """Run each check; a check that cannot apply is skipped with its reason, one that crashes is
    recorded as failed (the run goes on, and the verdict says 'incomplete')."""
    findings: list[Finding] = []
    statuses: list[CheckStatus] = []
    for done, name in enumerate(names):
        check = REGISTRY[name]
        progress("checks", f"Check: {name}", done, len(names))
        reason = check.missing(ctx)
        if reason is not None:
            statuses.append(CheckStatus(name, "skipped", reason=reason))
            continue
        start = time.perf_counter()
        try:
            found = check.run(ctx)
        except Exception as exc:  # a bug in one check must not lose the others' results
            statuses.append(CheckStatus(name, "failed", seconds=time.perf_counter() - start,
                                        reason=f"{type(exc).__name__}: {str(exc)[:200]}"))
        else:
            findings.extend(found)
            statuses.append(CheckStatus(name, "ran", findings=len(found), seconds=time.perf_counter() - start))
    progress("checks", "Deterministic checks", len(names), len(names))
    return findings, statuses


def audit(train: DataInput, eval: DataInput | None = None, real: DataInput | None = None, *,
          guide: str | Path | None = None, config: AuditConfig | str | Path | dict[str, Any] | None = None,
          llm: bool = True, checks: Sequence[str] = (), skip: Sequence[str] = (),
          columns: Columns | None = None, jobs: LLMJobs | None = None, progress: Progress = no_progress,
          trace_sink: TraceSink | None = None) -> AuditResult:
    """Audit `train` (a path or a DataFrame), with optional `eval` and `real` splits.

    `config`: an AuditConfig, a YAML path or a dict of settings (config.example.yaml lists them).
    `llm=False` runs the deterministic checks only (no model is started)."""
    started = time.perf_counter()
    cfg = _config(config)
    names = select_checks(checks, skip)
    ctx = load_context(train, eval, real, guide=guide, config=cfg, columns=columns, progress=progress)
    findings, statuses = run_checks(ctx, names, progress)
    result = RunResult(ctx=ctx, findings=findings, statuses=statuses, seconds=0.0)
    if llm:
        run_llm_jobs(result, jobs or LLMJobs(guide_name=Path(guide).name if guide else None), progress,
                     trace_sink)
    result.findings = sort_findings(result.findings)
    result.facts = run_facts(ctx, result.findings)
    result.seconds = time.perf_counter() - started
    return AuditResult(result)


def _config(config: AuditConfig | str | Path | dict[str, Any] | None) -> AuditConfig:
    if config is None:
        return AuditConfig()
    if isinstance(config, AuditConfig):
        return config
    if isinstance(config, dict):
        flat: dict[str, Any] = {}
        _flatten(config, "", flat)
        return load_config(None, flat)
    return load_config(Path(config))


def _flatten(node: dict[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for key, value in node.items():
        if isinstance(value, dict):
            _flatten(value, f"{prefix}{key}.", out)
        else:
            out[f"{prefix}{key}"] = value


class AuditResult:
    """What `audit` returns: the findings and the per-row issue table as DataFrames, the verdict, and
    the typed `run` result. `write(out_dir)` writes report.md and every other output file."""

    def __init__(self, run: RunResult) -> None:
        self.run = run

    @property
    def verdict(self) -> str:
        return self.run.verdict

    @property
    def findings(self) -> pd.DataFrame:
        """One row per finding: id, check, severity, split, source, verified, rows, labels, message."""
        columns = ["id", "check", "severity", "split", "source", "verified", "n_rows", "rows", "labels", "message"]
        return pd.DataFrame([{"id": f.id, "check": f.check, "severity": f.severity.value, "split": f.split,
                              "source": f.source, "verified": f.verified, "n_rows": len(f.rows),
                              "rows": [str(r) for r in f.rows], "labels": list(f.labels), "message": f.message}
                             for f in self.run.findings], columns=columns)

    @property
    def issues(self) -> pd.DataFrame:
        """One row per training row (in input order): `id`, `label`, and for every kind of finding that
        ran, `<kind>_score` (0-1, higher = worse) and `is_<kind>_issue` (named by a verified finding of
        that kind at low severity or above)."""
        return issue_table(self.run)

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write report.md, findings.jsonl, summary.json and the review files into `out_dir`."""
        from audit_agent.report.outputs import write_outputs

        return write_outputs(self.run, Path(out_dir))

    def __repr__(self) -> str:
        return (f"AuditResult(verdict={self.verdict!r}, findings={len(self.run.findings)}, "
                f"rows={len(self.run.ctx.train)})")


def issue_table(run: RunResult) -> pd.DataFrame:
    """The per-row table behind `AuditResult.issues` (scores from `FindingKind.row_scores`)."""
    frame = run.ctx.train.frame
    ids = frame["id"].astype(str)
    out = pd.DataFrame({"id": ids.to_numpy(), "label": frame["label"].to_numpy() if "label" in frame else None})
    position = pd.Index(ids)
    kinds = [s.name for s in run.statuses if s.state == "ran"]
    kinds += sorted({f.check for f in run.findings if f.source != "check"})
    for name in kinds:
        kind = KINDS[name]
        score = np.zeros(len(frame))
        flag = np.zeros(len(frame), dtype=bool)
        for f in run.findings:
            if f.check != name or f.split != "train":
                continue
            rows = kind.row_scores(f)
            if not rows:
                continue
            pos = position.get_indexer(pd.Index(list(rows)))
            values = np.fromiter(rows.values(), dtype=float, count=len(rows))
            keep = pos >= 0
            np.maximum.at(score, pos[keep], values[keep])
            if f.verified:
                flag[pos[keep & (values > 0)]] = True
        out[f"{name}_score"] = score.round(4)
        out[f"is_{name}_issue"] = flag
    return out


__all__ = [
    "AuditResult",
    "Columns",
    "JobSkip",
    "LLMJobs",
    "LLMUsage",
    "audit",
    "issue_table",
    "load_context",
    "run_checks",
    "select_checks",
]
