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
from rich.table import Table

from audit_agent import __version__
from audit_agent.config import AuditConfig, load_config
from audit_agent.dataset import AuditContext
from audit_agent.errors import AuditError
from audit_agent.findings import Finding, Severity
from audit_agent.llm.base import LLMClient
from audit_agent.pipeline import DataOptions, RunOptions, failing_findings, run_audit

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

app = typer.Typer(
    name="audit-agent",
    help="Audit a (synthetic) training set before you fine-tune a small model on it: duplicates, label "
         "problems, template shortcuts, leaking phrases, missing messy inputs and the gap to real traffic.",
    no_args_is_help=True, add_completion=False, rich_markup_mode="rich", pretty_exceptions_enable=False,
)
console = Console(stderr=True)
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
    max_calls: Annotated[int | None, typer.Option(help="Judge budget: at most this many LLM calls.")] = None,
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
    engine: EngineOpt = None,
    engine_address: EngineAddressOpt = None,
    engine_cpus: EngineCpusOpt = None,
) -> None:
    """Audit DATA and write report.md, findings.jsonl, summary.json and review files to --out.

    Exit codes: 0 done, 1 a finding reached --fail-on, 2 bad input or config, 3 the model failed,
    130 interrupted (LLM work done so far is cached; rerun to resume).
    """
    try:
        cfg = _config(config, llm__model=model, llm__api_base=api_base, seed=seed, llm__budget__max_calls=max_calls,
                      engine__kind=engine, engine__address=engine_address, engine__num_cpus=engine_cpus)
        opts = RunOptions(
            data=DataOptions(data=data, eval=eval_path, real=real, guide=guide, text_col=text_col,
                             label_col=label_col, id_col=id_col, task_col=task_col),
            out_dir=out, use_llm=not no_llm, only_checks=check or [], skip_checks=skip or [],
            guide_rewrite=rewrite_guide, paraphrase_rows=paraphrase_rows, paraphrase_per_row=per_row)
        result = _run_on_engine(opts, cfg)
    except AuditError as exc:
        _fail(exc)
        return
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: judgements made so far are cached; rerun the same "
                      "command to resume.", soft_wrap=True)
        raise typer.Exit(130) from None
    _print_summary(result, out)
    if failing_findings(result.findings, fail_on):
        raise typer.Exit(1)


EngineOpt = Annotated[str | None, typer.Option(
    "--engine", help="Where the row-parallel work runs: local (this process, the default) or ray (partitioned "
                     "stages on a Ray cluster; a local one unless --engine-address).")]
EngineAddressOpt = Annotated[str | None, typer.Option(
    "--engine-address", help="A running Ray cluster to join, e.g. auto or ray://head:10001 (default: start a "
                             "local one).")]
EngineCpusOpt = Annotated[int | None, typer.Option("--engine-cpus", min=1, help="CPUs of the local Ray cluster "
                                                                                  "(default: all).")]


def _run_on_engine(opts: RunOptions, cfg: AuditConfig) -> Any:
    """The in-process audit, or the partitioned one on the configured engine."""
    if cfg.engine.kind == "local":
        return run_audit(opts, cfg, console)
    from audit_agent.engine.run import run_audit_engine

    return run_audit_engine(opts, cfg, console)


def _print_summary(result: Any, out: Path) -> None:
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
    for name, state, secs in rows:
        counts = per_check.get(name, Counter())
        table.add_row(name, state, *(str(counts.get(s, 0) or "") for s in ("high", "medium", "low", "info")),
                      f"{secs:.1f}" if secs else "")
    out_console.print(table)
    colour = "red" if result.verdict == "fix first" else "green"
    out_console.print(f"Verdict: [bold {colour}]{result.verdict}[/bold {colour}]  "
                      f"report: {out / 'report.md'}  ({result.seconds:.1f} s)")


FindingsOpt = Annotated[Path | None, typer.Option("--findings", help="findings.jsonl of an earlier `run` "
                                                                    "(default: run the deterministic checks now).")]


@contextmanager
def _llm_job(data: DataOptions, config: Path | None, model: str | None, api_base: str | None,
             max_calls: int | None, findings: Path | None) -> Iterator[tuple[AuditContext, list[Finding], LLMClient]]:
    """What the guide and paraphrase commands share: config, the audit's findings, a started model."""
    from audit_agent.llm.factory import open_client
    from audit_agent.pipeline import audit_for_job

    cfg = _config(config, llm__model=model, llm__api_base=api_base, llm__budget__max_calls=max_calls)
    ctx, found = audit_for_job(data, cfg, console, findings)
    with open_client(cfg) as client:
        console.print(f"[bold]Model:[/bold] {client.description}", highlight=False, soft_wrap=True)
        yield ctx, found, client


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
    from audit_agent.guide_job import run_guide

    try:
        data_opts = DataOptions(data=data, real=real, guide=old_guide, text_col=text_col, label_col=label_col,
                                id_col=id_col)
        with _llm_job(data_opts, config, model, api_base, max_calls, findings) as (ctx, found, client), \
                console.status("Rewriting the guide"):
            res = run_guide(ctx, found, client, out, old_guide)
    except AuditError as exc:
        _fail(exc)
        return
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    counts = ", ".join(f"{v} {k}" for k, v in res.status_counts.items())
    out_console.print(f"Guide: {res.labels} labels, {res.pairs} tie-break rules ({counts}); "
                      f"{res.relabel_candidates} relabel candidates; {len(res.failed_checks)} failed checks.")
    out_console.print(f"Wrote {res.guide_path}, {res.diff_path}, {res.relabel_path}, {res.checks_path}")


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
    from audit_agent.paraphrase_job import accept_paraphrases, run_paraphrase

    try:
        if accept is not None:
            merged = accept_paraphrases(accept, data, out)
            out_console.print(f"Wrote {merged}")
            return
        data_opts = DataOptions(data=data, real=real, text_col=text_col, label_col=label_col, id_col=id_col)
        with _llm_job(data_opts, config, model, api_base, max_calls, findings) as (ctx, found, client), \
                console.status("Writing and verifying paraphrases"):
            res = run_paraphrase(ctx, found, client, out, per_row=per_row, max_rows=max_rows)
    except AuditError as exc:
        _fail(exc)
        return
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    out_console.print(f"Paraphrases: {res.rows_selected} rows, {res.candidates} candidates, {res.passed} passed "
                      f"verification ({res.pass_share:.0%}); {res.seconds_per_row:.1f} s per row.")
    out_console.print(f"Review {res.csv_path} (set status to 'accepted' or 'rejected'), then run "
                      f"audit-agent paraphrase {data} --accept {res.csv_path} --out {out}")


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
