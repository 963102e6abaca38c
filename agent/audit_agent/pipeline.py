"""The run: load -> deterministic checks -> agent loop with the judge -> report files."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from audit_agent.config import AuditConfig
from audit_agent.dataset import AuditContext, Dataset, TaskKind
from audit_agent.errors import ConfigError, InputError
from audit_agent.findings import Finding, Severity, sort_findings
from audit_agent.io.loader import Role, load_dataset
from audit_agent.llm.base import LLMClient
from audit_agent.run_result import CheckStatus, JudgeSummary, RunResult


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
    guide_rewrite: bool = True
    paraphrase_rows: int = 8
    paraphrase_per_row: int = 2


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
    with _step(progress, f"Loading {opts.data.name}"):
        train = load_dataset(opts.data, role="train", kind=opts.kind, text_col=opts.text_col,
                             label_col=opts.label_col, id_col=opts.id_col, task_col=opts.task_col)
    eval_ds = real_ds = None
    side = {"text_col": opts.text_col or train.text_col, "label_col": opts.label_col, "id_col": opts.id_col}
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


def _load_side(path: Path, role: Role, cols: dict[str, str | None], train: Dataset) -> Dataset:
    """Eval and real splits: labels optional; columns default to what the training set used, and
    are detected afresh when the side file names them differently."""
    try:
        return load_dataset(path, role=role, labels_required=False, kind=train.kind, text_col=cols["text_col"],
                            label_col=cols["label_col"], id_col=cols["id_col"])
    except InputError as exc:
        if "no text column" in str(exc) or "no label column" in str(exc) or "no id column" in str(exc):
            return load_dataset(path, role=role, labels_required=False, kind=train.kind)
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
        extra: dict[str, Any] = {}
        if opts.use_llm:
            judge_findings, judge, extra = run_llm_jobs(ctx, findings, opts, progress, console)
            findings.extend(judge_findings)
        result = RunResult(ctx=ctx, findings=sort_findings(findings), statuses=statuses,
                           seconds=time.perf_counter() - started, judge=judge, extra=extra)
        with _step(progress, "Writing the report"):
            write_outputs(result, opts.out_dir)
    return result


def llm_shares(opts: RunOptions, ctx: AuditContext) -> dict[str, int]:
    """Split the call budget: the guide rewrite and the paraphrase batch are promised their calls
    (together at most half the budget, each at least a third of that reserve when it runs at all);
    the judge gets the rest."""
    total = ctx.config.llm.budget.max_calls
    classification = ctx.train.kind == "classification" and ctx.train.has_labels
    want_guide = 2 * len(ctx.train.label_set) + 10 if opts.guide_rewrite and classification else 0
    want_para = opts.paraphrase_rows * opts.paraphrase_per_row if classification else 0
    reserve = min(want_guide + want_para, total // 2)
    para = min(want_para, max(reserve // 3, 1)) if want_para and reserve else 0
    guide = min(want_guide, reserve - para)
    return {"judge": total - guide - para, "guide": guide, "paraphrase": para}


def run_llm_jobs(ctx: AuditContext, findings: list[Finding], opts: RunOptions, progress: Progress,
                 console: Console) -> tuple[list[Finding], JudgeSummary, dict[str, Any]]:
    """Start (or connect to) the model once; run the agent loop with the judge, then the guide
    rewrite and the paraphrase batch, each within its share of the budget."""
    from audit_agent.llm.capped import CappedClient
    from audit_agent.llm.factory import open_client
    from audit_agent.loop.agent import run_agent

    shares = llm_shares(opts, ctx)
    extra: dict[str, Any] = {"llm_budget_shares": shares}
    # The shares cap logical calls (so reruns replay identically); the client's own budget then only
    # has to bound real requests, retries included.
    llm_cfg = ctx.config.llm
    requests_cap = llm_cfg.budget.max_calls * (llm_cfg.retries + 1)
    config = ctx.config.model_copy(update={"llm": llm_cfg.model_copy(update={
        "budget": llm_cfg.budget.model_copy(update={"max_calls": requests_cap})})})
    with open_client(config) as client:
        console.print(f"[bold]Judge:[/bold] {client.description}", highlight=False, soft_wrap=True)
        task = progress.add_task("Judging rows", total=None)

        def advance(step: int, total: int | None, description: str) -> None:
            progress.update(task, advance=step, total=total, description=description)

        judge_findings, judge = run_agent(ctx, findings, CappedClient(client, shares["judge"], "judge"),
                                          trace_path=opts.out_dir / "trace.jsonl", progress=advance)
        all_findings = [*findings, *judge_findings]
        if shares["guide"]:
            with _step(progress, "Rewriting the annotation guide"):
                extra["guide"] = _guide(ctx, all_findings, CappedClient(client, shares["guide"], "guide"),
                                        opts.out_dir, opts.data.guide)
        if shares["paraphrase"]:
            with _step(progress, "Proposing messy paraphrases"):
                extra["paraphrase"] = _paraphrase(
                    ctx, all_findings, CappedClient(client, shares["paraphrase"], "paraphrase"), opts.out_dir,
                    opts.paraphrase_per_row, opts.paraphrase_rows)
        files = extra.setdefault("files", {})
        if "guide" in extra:
            g = extra["guide"]
            files.update({"the revised annotation guide": g["file"], "its diff against the old guide": g["diff"],
                          "rows whose label the new rules would change": g["relabel_file"],
                          "verification of every guide item": g["checks_file"]})
        if "paraphrase" in extra:
            files["messy paraphrases for review (also as .jsonl)"] = extra["paraphrase"]["file"]
        usage = client.usage
        extra["llm_usage"] = {"calls": usage.calls, "cached": usage.cached, "failed": usage.failed,
                              "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                              "cost_usd": round(usage.cost_usd, 6), "model": client.description,
                              "server_restarts": usage.restarts}
    return judge_findings, judge, extra


def _guide(ctx: AuditContext, findings: list[Finding], client: LLMClient, out_dir: Path,
           old_guide: Path | None) -> dict[str, Any]:
    from audit_agent.guide_job import run_guide

    res = run_guide(ctx, findings, client, out_dir, old_guide)
    return {"file": res.guide_path.name, "diff": res.diff_path.name, "relabel_file": res.relabel_path.name,
            "checks_file": res.checks_path.name, "labels": res.labels, "pairs": res.pairs,
            "status_counts": res.status_counts, "relabel_candidates": res.relabel_candidates,
            "mind_reading_rows": res.mind_reading_rows, "failed_checks": len(res.failed_checks),
            "llm_calls": res.llm_calls, "seconds": round(res.seconds, 1), "notes": res.notes}


def _paraphrase(ctx: AuditContext, findings: list[Finding], client: LLMClient, out_dir: Path, per_row: int,
                max_rows: int) -> dict[str, Any]:
    from audit_agent.paraphrase_job import run_paraphrase, summary_dict

    res = run_paraphrase(ctx, findings, client, out_dir, per_row=per_row, max_rows=max_rows)
    return {"file": res.csv_path.name, "jsonl": res.jsonl_path.name, **summary_dict(res)}


def audit_for_job(data: DataOptions, config: AuditConfig, console: Console,
                  findings_file: Path | None) -> tuple[AuditContext, list[Finding]]:
    """Load the data and get the findings a guide/paraphrase job builds on: from an earlier run's
    findings.jsonl when given, else by running the deterministic checks now."""
    with make_progress(console) as progress:
        ctx = load_context(data, config, progress)
        if findings_file is not None:
            return ctx, read_findings(findings_file)
        findings, _ = run_checks(ctx, select_checks([], []), progress)
    return ctx, findings


def read_findings(path: Path) -> list[Finding]:
    """Findings from a findings.jsonl an earlier `audit-agent run` wrote."""
    if not path.exists():
        raise InputError(path, "findings file not found")
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(Finding.model_validate_json(line))
        except ValueError:
            raise InputError(path, f"line {lineno}: not a finding written by audit-agent") from None
    return out


def failing_findings(findings: list[Finding], fail_on: Severity | None) -> list[Finding]:
    """Verified findings at or above `fail_on` (unverified claims never fail a CI gate)."""
    if fail_on is None:
        return []
    return [f for f in findings if f.verified and f.severity.rank >= fail_on.rank]
