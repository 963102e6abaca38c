"""The `audit-agent` command line: parses arguments, builds the config, calls the pipeline."""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from audit_agent import __version__
from audit_agent.api import Columns
from audit_agent.config import AuditConfig, load_config
from audit_agent.dataset import AuditContext
from audit_agent.errors import AuditError, InputError
from audit_agent.findings import Finding, Severity
from audit_agent.jobs.runner import label_job_skip
from audit_agent.llm.base import LLMClient
from audit_agent.run_result import RunResult

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

app = typer.Typer(
    name="audit-agent",
    help="Audit a (synthetic) training set before you fine-tune a small model on it: duplicates, label "
         "problems, template shortcuts, leaking phrases, missing messy inputs and the gap to real traffic.",
    no_args_is_help=True, add_completion=False, rich_markup_mode="rich", pretty_exceptions_enable=False,
)
console = Console(stderr=True)
INCOMPLETE = 5
"""Exit code of a run in which a check crashed (the verdict is 'incomplete')."""
out_console = Console()

DataArg = Annotated[Path, typer.Argument(help="Training data: CSV, TSV, JSONL, JSON, Parquet, OpenAI chat "
                                               "JSONL or Alpaca JSON/JSONL.", show_default=False)]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder for the report and output files.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML settings (see config.example.yaml).")]
TextCol = Annotated[str | None, typer.Option(help="Column with the input text (default: auto-detect).")]
LabelCol = Annotated[str | None, typer.Option(help="Column with the label or target text (default: auto-detect).")]
IdCol = Annotated[str | None, typer.Option(help="Column with row ids (default: 0-based row position).")]
TaskCol = Annotated[str | None, typer.Option(help="Column with a task/domain name (default: auto-detect).")]
EvalOpt = Annotated[Path | None, typer.Option("--eval", help="The test split you plan to score on.")]
RealOpt = Annotated[Path | None, typer.Option("--real", help="A small batch (30-50 rows) of real user inputs; "
                                                              "labels optional.")]
GuideOpt = Annotated[Path | None, typer.Option("--guide", help="Current annotation guide (markdown or YAML).")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Any litellm model, e.g. openai/gpt-4o-mini or "
                                                               "ollama/llama3.1 (default: the embedded local model).")]
ApiBaseOpt = Annotated[str | None, typer.Option("--api-base", help="Base URL of a self-hosted or OpenAI-compatible "
                                                                     "server for --model, e.g. "
                                                                     "http://127.0.0.1:8000/v1 (a local one needs "
                                                                     "no key).")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed for sampling (default 0).")]


def _version(value: bool) -> None:
    if value:
        out_console.print(f"audit-agent {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Show the version and exit.")] = False) -> None:
    """audit-agent: catch the traps in training data before fine-tuning."""


def _config(path: Path | None, **overrides: Any) -> AuditConfig:
    return load_config(path, {k.replace("__", "."): v for k, v in overrides.items()})


def _fail(exc: AuditError) -> None:
    console.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


class RichProgress:
    """The library's progress callback shown as rich progress bars (one per stage)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, stage: str, description: str, done: int, total: int | None) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(description, total=total)
        task = self.tasks[stage]
        if stage == "judge" and total is None and done:
            self.progress.update(task, advance=done, description=description)
        else:
            self.progress.update(task, completed=done, total=total, description=description)


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False,
                    disable=not console.is_terminal)


def failing_findings(findings: list[Finding], fail_on: Severity | None) -> list[Finding]:
    """Verified findings at or above `fail_on` (unverified claims never fail a CI gate)."""
    if fail_on is None:
        return []
    return [f for f in findings if f.verified and f.severity.rank >= fail_on.rank]


@app.command()
def run(
    data: DataArg,
    out: OutOpt = Path("audit"),
    eval_path: EvalOpt = None,
    real: RealOpt = None,
    guide: GuideOpt = None,
    text_col: TextCol = None,
    label_col: LabelCol = None,
    id_col: IdCol = None,
    task_col: TaskCol = None,
    config: ConfigOpt = None,
    model: ModelOpt = None,
    api_base: ApiBaseOpt = None,
    seed: SeedOpt = None,
    max_calls: Annotated[int | None, typer.Option(help="LLM budget: at most this many calls in all "
                                                       "(llm.budget.max_calls).")] = None,
    no_llm: Annotated[bool, typer.Option("--no-llm", help="Deterministic checks only; no model is started.")] = False,
    check: Annotated[list[str] | None, typer.Option("--check", help="Run only this check (repeatable).")] = None,
    skip: Annotated[list[str] | None, typer.Option("--skip", help="Skip this check (repeatable).")] = None,
    fail_on: Annotated[Severity | None, typer.Option(help="Exit with code 1 when a verified finding reaches "
                                                          "this severity (for CI gates).")] = None,
    rewrite_guide: Annotated[bool, typer.Option("--rewrite-guide/--no-rewrite-guide",
                                                help="With the LLM: also write revised_guide.md.")] = True,
    paraphrase_rows: Annotated[int, typer.Option(min=0, help="With the LLM: over-polished rows to paraphrase "
                                                             "into paraphrases.csv (0 = none).")] = 8,
    per_row: Annotated[int, typer.Option(min=1, help="Messy rewrites proposed per paraphrased row.")] = 2,
    second_judge: Annotated[str | None, typer.Option("--second-judge", help="A second judge model (litellm "
                                                     "string): every row judged twice, Cohen's kappa and the "
                                                     "disagreements in the report (judge.second.model).")] = None,
    second_api_base: Annotated[str | None, typer.Option("--second-api-base", help="Base URL of the second "
                                                        "judge's server (judge.second.api_base).")] = None,
    second_framing: Annotated[bool, typer.Option("--second-framing", help="Judge every row twice with the same "
                                                 "model: a second prompt and another label order "
                                                 "(judge.second_framing).")] = False,
) -> None:
    """Audit DATA and write report.md, findings.jsonl, summary.json and review files to --out.

    Exit codes: 0 done, 1 a verified finding reached --fail-on, 2 bad input or config, 3 the model
    failed, 4 internal error, 5 incomplete (a check crashed; the rest of the report stands),
    130 interrupted (LLM work done so far is cached; rerun to resume).
    """
    from audit_agent.api import Columns, LLMJobs, audit
    from audit_agent.report.outputs import write_outputs
    from audit_agent.report.trace_file import TRACE_FILE, TraceFile

    try:
        cfg = _config(config, llm__model=model, llm__api_base=api_base, seed=seed, llm__budget__max_calls=max_calls,
                      judge__second__model=second_judge, judge__second__api_base=second_api_base,
                      judge__second_framing=second_framing or None)
        out.mkdir(parents=True, exist_ok=True)
        with _progress() as bars, TraceFile(out / TRACE_FILE) as trace:
            result = audit(data, eval_path, real, guide=guide, config=cfg, llm=not no_llm, checks=check or [],
                           skip=skip or [], columns=Columns(text_col, label_col, id_col, task_col),
                           jobs=LLMJobs(rewrite_guide, paraphrase_rows, per_row, guide.name if guide else None),
                           progress=RichProgress(bars), trace_sink=trace)
            if result.run.judge is not None:
                console.print(f"[bold]Judge:[/bold] {result.run.judge.where_data_went}", highlight=False,
                              soft_wrap=True)
            write_outputs(result.run, out)
        if result.run.judge is None:
            (out / TRACE_FILE).unlink(missing_ok=True)
    except AuditError as exc:
        _fail(exc)
        return
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: judgements made so far are cached; rerun the same "
                      "command to resume.", soft_wrap=True)
        raise typer.Exit(130) from None
    _print_summary(result.run, out)
    if failing_findings(result.run.findings, fail_on):
        raise typer.Exit(1)
    if result.run.failed_checks:
        raise typer.Exit(INCOMPLETE)


def _print_summary(result: RunResult, out: Path) -> None:
    table = Table(title=f"audit-agent: {result.ctx.train.path.name} ({len(result.ctx.train):,} rows)")
    for col in ("check", "status", "high", "medium", "low", "info", "seconds"):
        table.add_column(col, justify="left" if col in ("check", "status") else "right")
    per_check: dict[str, Counter[str]] = {}
    for f in result.findings:
        per_check.setdefault(f.check, Counter())[f.severity.value] += 1
    rows = [(s.name, s.state if s.state != "skipped" else f"skipped ({s.reason})", s.seconds)
            for s in result.statuses]
    if result.judge is not None:
        for name in ("judge_contradicted", "judge_ambiguous"):
            rows.append((name, "ran", 0.0))
    for job in result.skipped_jobs:
        rows.append((job.job, f"skipped ({job.reason})", 0.0))
    for name, state, secs in rows:
        counts = per_check.get(name, Counter())
        table.add_row(name, state, *(str(counts.get(s, 0) or "") for s in ("high", "medium", "low", "info")),
                      f"{secs:.1f}" if secs else "")
    out_console.print(table)
    colour = {"fix first": "red", "incomplete": "yellow"}.get(result.verdict, "green")
    out_console.print(f"Verdict: [bold {colour}]{result.verdict}[/bold {colour}]  "
                      f"report: {out / 'report.md'}  ({result.seconds:.1f} s)")


FindingsOpt = Annotated[Path | None, typer.Option("--findings", help="findings.jsonl of an earlier `run` "
                                                                    "(default: run the deterministic checks now).")]


@contextmanager
def _llm_job(data: Path, *, guide: Path | None = None, real: Path | None, columns: Columns, config: Path | None,
             model: str | None, api_base: str | None, max_calls: int | None, findings: Path | None,
             job: str) -> Iterator[tuple[AuditContext, list[Finding], LLMClient]]:
    """What the guide and paraphrase commands share: config, the audit's findings (from an earlier
    run's findings.jsonl, else the deterministic checks now), a started model holding the whole
    `max_calls` budget as this job's share."""
    from audit_agent.api import load_context, run_checks, select_checks
    from audit_agent.io.findings_file import read_findings
    from audit_agent.llm.capped import CappedClient
    from audit_agent.llm.factory import open_client

    cfg = _config(config, llm__model=model, llm__api_base=api_base, llm__budget__max_calls=max_calls)
    with _progress() as bars:
        show = RichProgress(bars)
        ctx = load_context(data, real=real, guide=guide, config=cfg, columns=columns, progress=show)
        found = read_findings(findings) if findings is not None else run_checks(ctx, select_checks(), show)[0]
    skip = label_job_skip(ctx)
    if skip is not None:
        raise InputError(ctx.train.path, f"the {job} job {skip}")
    with open_client(cfg) as client:
        console.print(f"[bold]Model:[/bold] {client.description}", highlight=False, soft_wrap=True)
        yield ctx, found, CappedClient(client, cfg.llm.budget.max_calls, job)


@app.command()
def guide(
    data: DataArg,
    old_guide: GuideOpt = None,
    out: OutOpt = Path("audit"),
    findings: FindingsOpt = None,
    real: RealOpt = None,
    text_col: TextCol = None,
    label_col: LabelCol = None,
    id_col: IdCol = None,
    config: ConfigOpt = None,
    model: ModelOpt = None,
    api_base: ApiBaseOpt = None,
    max_calls: Annotated[int | None, typer.Option(help="At most this many LLM calls.")] = None,
) -> None:
    """Rewrite the annotation guide: a plain definition, what it is not and real examples per label,
    a tie-break rule per colliding label pair; writes revised_guide.md, a diff against --guide and
    relabel_candidates.csv (relabel after the rules change, not before)."""
    from audit_agent.jobs.guide import run_guide
    from audit_agent.report.guide_outputs import write_guide_outputs

    try:
        with _llm_job(data, guide=old_guide, real=real, columns=Columns(text_col, label_col, id_col), config=config,
                      model=model, api_base=api_base, max_calls=max_calls, findings=findings,
                      job="guide") as (ctx, found, client), console.status("Rewriting the guide"):
            res = run_guide(ctx, found, client, old_guide_name=old_guide.name if old_guide else None)
        paths = write_guide_outputs(out, res)
    except AuditError as exc:
        _fail(exc)
        return
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    counts = ", ".join(f"{v} {k}" for k, v in res.status_counts.items())
    out_console.print(f"Guide: {res.labels} labels, {res.pairs} tie-break rules ({counts}); "
                      f"{res.relabel_candidates} relabel candidates; {len(res.failed_checks)} failed checks.")
    out_console.print("Wrote " + ", ".join(str(p) for p in paths.values()))


@app.command()
def paraphrase(
    data: DataArg,
    out: OutOpt = Path("audit"),
    per_row: Annotated[int, typer.Option(min=1, help="Messy rewrites proposed per row.")] = 3,
    max_rows: Annotated[int, typer.Option(min=1, help="At most this many over-polished rows.")] = 20,
    real: RealOpt = None,
    findings: FindingsOpt = None,
    accept: Annotated[Path | None, typer.Option("--accept", help="A reviewed paraphrases.csv/.jsonl: merge "
                                                                   "rows with status 'accepted' into a new "
                                                                   "copy of DATA in --out.")] = None,
    text_col: TextCol = None,
    label_col: LabelCol = None,
    id_col: IdCol = None,
    config: ConfigOpt = None,
    model: ModelOpt = None,
    api_base: ApiBaseOpt = None,
    max_calls: Annotated[int | None, typer.Option(help="At most this many LLM calls.")] = None,
) -> None:
    """Propose messy, real-style rewrites of over-polished rows (verified: same label, messier, not a
    near duplicate, no template frame) as paraphrases.csv for human review; with --accept, merge the
    accepted ones into a new dataset file (the original is never touched)."""
    from audit_agent.jobs.paraphrase import accepted_rows, run_paraphrase
    from audit_agent.report.paraphrase_outputs import read_review_file, write_merged, write_review_batch

    try:
        if accept is not None:
            from audit_agent.io.loader import load_dataset

            review = read_review_file(accept)
            ds = load_dataset(data, text_col=text_col, label_col=label_col, id_col=id_col)
            merged = write_merged(ds, accepted_rows(review, accept, ds), out)
            out_console.print(f"Wrote {merged}")
            return
        with _llm_job(data, real=real, columns=Columns(text_col, label_col, id_col), config=config, model=model,
                      api_base=api_base, max_calls=max_calls, findings=findings,
                      job="paraphrase") as (ctx, found, client), console.status("Writing and verifying paraphrases"):
            res = run_paraphrase(ctx, found, client, per_row=per_row, max_rows=max_rows)
        paths = write_review_batch(res, out)
    except AuditError as exc:
        _fail(exc)
        return
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    out_console.print(f"Paraphrases: {res.rows_selected} rows, {res.candidates} candidates, {res.passed} passed "
                      f"verification ({res.pass_share:.0%}); {res.seconds_per_row:.1f} s per row.")
    out_console.print(f"Review {paths['csv']} (set status to 'accepted' or 'rejected'), then run "
                      f"audit-agent paraphrase {data} --accept {paths['csv']} --out {out}")


# ---------------------------------------------------------------- review loop: agree, apply, diff


def _print_all(items: list[Any]) -> None:
    for item in items:
        out_console.print(item, highlight=False, soft_wrap=True)


@app.command()
def agree(
    files: Annotated[list[Path], typer.Argument(help="Two reviewer CSVs (A.csv B.csv), or one file with --columns.",
                                                show_default=False)],
    columns: Annotated[tuple[str, str] | None, typer.Option("--columns", help="Compare these two label columns "
                                                                              "of ONE file.")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="The dataset: its labels are the known labels.")] = None,
    findings: Annotated[Path | None, typer.Option("--findings", help="findings.jsonl of the audit: rows its "
                                                                     "label checks flagged count as hard.")] = None,
    common_only: Annotated[bool, typer.Option("--common-only", help="Compare the rows both files have; skip the "
                                                                    "rest instead of failing.")] = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for agreement.md/.json (default: "
                                                                 "beside the first file).")] = None,
    text_col: TextCol = None,
    label_col: LabelCol = None,
    id_col: IdCol = None,
) -> None:
    """How often two reviewers disagree: Cohen's kappa overall and per label, the confusion table, every
    disagreement, and whether the labels need work (agreement.md, agreement.json)."""
    from audit_agent.report.review_console import agreement_summary
    from audit_agent.review.commands import agree_files

    try:
        result, paths = agree_files(files, columns=columns, data=data, findings=findings, common_only=common_only,
                                    out=out, text_col=text_col, label_col=label_col, id_col=id_col)
    except AuditError as exc:
        _fail(exc)
        return
    _print_all(agreement_summary(result, paths))


@app.command("apply")
def apply_cmd(
    data: DataArg,
    decisions: Annotated[list[Path], typer.Option("--decisions", "-d", help="A reviewer CSV, review_sample.csv, "
                                                                          "relabel_candidates.csv or "
                                                                          "paraphrases.csv (repeatable).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="The new version (default: DATA's name + "
                                                                 "'.next', beside it); changelog.csv/.md go "
                                                                 "beside it.")] = None,
    allow_new_labels: Annotated[bool, typer.Option("--allow-new-labels", help="Accept labels DATA does not "
                                                                              "have yet.")] = False,
    text_col: TextCol = None,
    label_col: LabelCol = None,
    id_col: IdCol = None,
) -> None:
    """Write the next dataset version: review decisions (keep, relabel, drop, hard), accepted relabel
    candidates and accepted paraphrases applied, hard rows tagged in a `hard` column, and a changelog."""
    from audit_agent.report.review_console import apply_summary
    from audit_agent.review.commands import apply_files

    try:
        plan, paths = apply_files(data, decisions, out=out, allow_new_labels=allow_new_labels, text_col=text_col,
                                  label_col=label_col, id_col=id_col)
    except AuditError as exc:
        _fail(exc)
        return
    _print_all(apply_summary(plan, paths))


@app.command()
def diff(
    old: Annotated[Path, typer.Argument(help="The earlier audit folder (`run --out`).", show_default=False)],
    new: Annotated[Path, typer.Argument(help="The later audit folder.", show_default=False)],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for diff.md/.json (default: NEW).")] = None,
) -> None:
    """Compare two audits: label counts, rows added/removed/relabelled, findings fixed/new/persisting per
    check, style and coverage shift, pilot gap before and after (diff.md, diff.json)."""
    from audit_agent.report.review_console import diff_summary
    from audit_agent.review.commands import diff_folders

    try:
        result, paths = diff_folders(old, new, out=out)
    except AuditError as exc:
        _fail(exc)
        return
    _print_all(diff_summary(result, paths))


@app.command("checks")
def list_checks() -> None:
    """List the deterministic checks and what each needs."""
    from audit_agent.checks import REGISTRY

    table = Table(title="checks")
    table.add_column("name")
    table.add_column("needs")
    table.add_column("looks for")
    for name in sorted(REGISTRY):
        spec = REGISTRY[name]
        table.add_row(name, ", ".join(spec.needs) or "-", spec.description)
    out_console.print(table)


def entry() -> None:
    """Console-script entry point: no traceback reaches the user unless AUDIT_AGENT_DEBUG=1."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("AUDIT_AGENT_DEBUG") == "1":
            raise
        console.print(f"[bold red]internal error:[/bold red] {type(exc).__name__}: {str(exc)[:300]} "
                      "(rerun with AUDIT_AGENT_DEBUG=1 for the traceback)", highlight=False)
        sys.exit(4)
