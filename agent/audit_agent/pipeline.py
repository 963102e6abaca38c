"""The run: load -> deterministic checks -> agent loop with the judge -> report files."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from audit_agent.config import AuditConfig
from audit_agent.dataset import AuditContext, Dataset, TaskKind
from audit_agent.errors import ConfigError, InputError
from audit_agent.findings import Finding, Severity, sort_findings
from audit_agent.io.loader import load_dataset
from audit_agent.run_result import CheckStatus, RunResult


@dataclass
class DataOptions:
    """Where the data is and which columns to use."""

    data: Path
    eval: Path | None = None
    real: Path | None = None
    guide: Path | None = None
    text_col: str | None = None
    label_col: str | None = None
    id_col: str | None = None
    task_col: str | None = None
    kind: TaskKind | None = None


@dataclass
class RunOptions:
    """What `audit-agent run` was asked to do."""

    data: DataOptions
    out_dir: Path = Path("audit")
    use_llm: bool = True
    only_checks: list[str] = field(default_factory=list)
    skip_checks: list[str] = field(default_factory=list)


def make_progress(console: Console) -> Progress:
    return Progress(SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False,
                    disable=not console.is_terminal)


@contextmanager
def _step(progress: Progress, description: str) -> Iterator[None]:
    task = progress.add_task(description, total=1)
    yield
    progress.update(task, completed=1)


def load_context(opts: DataOptions, config: AuditConfig, progress: Progress) -> AuditContext:
    """Load the training set and the optional eval/real splits with the same column choices."""
    cols = {"text_col": opts.text_col, "label_col": opts.label_col, "id_col": opts.id_col,
            "task_col": opts.task_col}
    with _step(progress, f"Loading {opts.data.name}"):
        train = load_dataset(opts.data, role="train", kind=opts.kind, **cols)
    eval_ds = real_ds = None
    side = {"text_col": opts.text_col or train.text_col, "label_col": opts.label_col, "id_col": opts.id_col,
            "task_col": None}
    if opts.eval is not None:
        with _step(progress, f"Loading eval {opts.eval.name}"):
            eval_ds = _load_side(opts.eval, "eval", side, train)
    if opts.real is not None:
        with _step(progress, f"Loading real batch {opts.real.name}"):
            real_ds = _load_side(opts.real, "real", side, train)
    guide_text = None
    if opts.guide is not None:
        if not opts.guide.exists():
            raise InputError(opts.guide, "guide file not found")
        try:
            guide_text = opts.guide.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError(opts.guide, "guide is not UTF-8 text") from None
    return AuditContext(train=train, config=config, eval=eval_ds, real=real_ds, guide_text=guide_text)


def _load_side(path: Path, role: str, cols: dict[str, str | None], train: Dataset) -> Dataset:
    """Eval and real splits: labels optional; columns default to what the training set used."""
    try:
        return load_dataset(path, role=role, labels_required=False, kind=train.kind,  # type: ignore[arg-type]
                            **cols)
    except InputError as exc:
        if cols["text_col"] and "no text column" in str(exc):
            return load_dataset(path, role=role, labels_required=False, kind=train.kind)  # type: ignore[arg-type]
        raise


def select_checks(only: list[str], skip: list[str]) -> list[str]:
    """Registered check names to run, validated against the registry."""
    from audit_agent.checks import REGISTRY

    for name in [*only, *skip]:
        if name not in REGISTRY:
            raise ConfigError(f"unknown check '{name}' (known: {', '.join(sorted(REGISTRY))})")
    names = only or sorted(REGISTRY)
    return [n for n in names if n not in skip]


def run_checks(ctx: AuditContext, names: list[str], progress: Progress) -> tuple[list[Finding], list[CheckStatus]]:
    """Run each check; a check that cannot apply is skipped with its reason, one that crashes is
    reported as failed (and the run goes on) so one bug never costs the whole audit."""
    from audit_agent.checks import REGISTRY

    findings: list[Finding] = []
    statuses: list[CheckStatus] = []
    task = progress.add_task("Deterministic checks", total=len(names))
    for name in names:
        spec = REGISTRY[name]
        progress.update(task, description=f"Check: {name}")
        reason = spec.missing(ctx)
        if reason is not None:
            statuses.append(CheckStatus(name, "skipped", reason=reason))
            progress.advance(task)
            continue
        start = time.perf_counter()
        try:
            found = spec.func(ctx)
        except Exception as exc:  # a bug in one check must not lose the others' results
            statuses.append(CheckStatus(name, "failed", seconds=time.perf_counter() - start,
                                        reason=f"{type(exc).__name__}: {str(exc)[:200]}"))
        else:
            findings.extend(found)
            statuses.append(CheckStatus(name, "ran", findings=len(found), seconds=time.perf_counter() - start))
        progress.advance(task)
    progress.update(task, description="Deterministic checks")
    return findings, statuses


def run_audit(opts: RunOptions, config: AuditConfig, console: Console) -> RunResult:
    """The whole `audit-agent run`: returns the result after writing every output file."""
    from audit_agent.report.outputs import write_outputs

    started = time.perf_counter()
    names = select_checks(opts.only_checks, opts.skip_checks)
    with make_progress(console) as progress:
        ctx = load_context(opts.data, config, progress)
        findings, statuses = run_checks(ctx, names, progress)
        judge = None
        if opts.use_llm:
            judge_findings, judge = run_judge(ctx, findings, config, opts.out_dir, progress, console)
            findings.extend(judge_findings)
        result = RunResult(ctx=ctx, findings=sort_findings(findings), statuses=statuses,
                           seconds=time.perf_counter() - started, judge=judge)
        with _step(progress, "Writing the report"):
            write_outputs(result, opts.out_dir)
    return result


def run_judge(ctx: AuditContext, findings: list[Finding], config: AuditConfig, out_dir: Path,
              progress: Progress, console: Console):  # type: ignore[no-untyped-def]
    """Start (or connect to) the model and run the agent loop; returns (findings, JudgeSummary)."""
    from audit_agent.llm.factory import open_client
    from audit_agent.loop.agent import run_agent

    with open_client(config) as client:
        console.print(f"[bold]Judge:[/bold] {client.description}")
        task = progress.add_task("Judging rows", total=None)

        def advance(step: int, total: int | None, description: str) -> None:
            progress.update(task, advance=step, total=total, description=description)

        return run_agent(ctx, findings, client, trace_path=out_dir / "trace.jsonl", progress=advance)


def failing_findings(findings: list[Finding], fail_on: Severity | None) -> list[Finding]:
    """Verified findings at or above `fail_on` (unverified claims never fail a CI gate)."""
    if fail_on is None:
        return []
    return [f for f in findings if f.verified and f.severity.rank >= fail_on.rank]
