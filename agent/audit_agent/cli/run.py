"""`audit-agent run` and `audit-agent checks`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from audit_agent.api import Columns
from audit_agent.cli.common import (
    INCOMPLETE,
    ApiBaseOpt,
    ConfigOpt,
    DataArg,
    EvalOpt,
    GuideOpt,
    IdCol,
    LabelCol,
    ModelOpt,
    OutOpt,
    RealOpt,
    RichProgress,
    SeedOpt,
    TaskCol,
    TextCol,
    app,
    command_errors,
    console,
    make_config,
    out_console,
    progress_bars,
)
from audit_agent.findings import Finding, Severity
from audit_agent.run_result import RunResult


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
    engine: Annotated[str | None, typer.Option(
        "--engine", help="Where the row-parallel work runs: local (this process, the default) or ray "
                         "(partitioned stages on a Ray cluster; a local one unless --engine-address).")] = None,
    engine_address: Annotated[str | None, typer.Option(
        "--engine-address", help="A running Ray cluster to join, e.g. auto or ray://head:10001 (default: start "
                                 "a local one).")] = None,
    engine_cpus: Annotated[int | None, typer.Option("--engine-cpus", min=1, help="CPUs of the local Ray cluster "
                                                                                 "(default: all).")] = None,
) -> None:
    """Audit DATA and write report.md, findings.jsonl, summary.json and review files to --out.

    Exit codes: 0 done, 1 a verified finding reached --fail-on, 2 bad input or config, 3 the model
    failed, 4 internal error, 5 incomplete (a check crashed; the rest of the report stands),
    130 interrupted (LLM work done so far is cached; rerun to resume).
    """
    from audit_agent.api import LLMJobs, audit
    from audit_agent.report.outputs import write_outputs
    from audit_agent.report.trace_file import TRACE_FILE, TraceFile

    with command_errors("[yellow]interrupted[/yellow]: judgements made so far are cached; rerun the same "
                        "command to resume."):
        cfg = make_config(config, llm__model=model, llm__api_base=api_base, seed=seed, llm__budget__max_calls=max_calls,
                          engine__kind=engine, engine__address=engine_address, engine__num_cpus=engine_cpus,
                          judge__second__model=second_judge, judge__second__api_base=second_api_base,
                          judge__second_framing=second_framing or None)
        out.mkdir(parents=True, exist_ok=True)
        with progress_bars() as bars, TraceFile(out / TRACE_FILE) as trace:
            columns = Columns(text_col, label_col, id_col, task_col)
            jobs = LLMJobs(rewrite_guide, paraphrase_rows, per_row, guide.name if guide else None)
            if cfg.engine.kind == "local":
                run_result = audit(data, eval_path, real, guide=guide, config=cfg, llm=not no_llm,
                                   checks=check or [], skip=skip or [], columns=columns, jobs=jobs,
                                   progress=RichProgress(bars), trace_sink=trace).run
            else:
                from audit_agent.engine.run import EngineData, run_audit_engine

                run_result = run_audit_engine(EngineData(data, eval_path, real, guide, columns), cfg,
                                              checks=check or [], skip=skip or [], llm=not no_llm, jobs=jobs,
                                              progress=RichProgress(bars), trace_sink=trace)
            if run_result.judge is not None:
                console.print(f"[bold]Judge:[/bold] {run_result.judge.where_data_went}", highlight=False,
                              soft_wrap=True)
            write_outputs(run_result, out, streamed=cfg.engine.kind != "local")
        if run_result.judge is None:
            (out / TRACE_FILE).unlink(missing_ok=True)
    _print_summary(run_result, out)
    if failing_findings(run_result.findings, fail_on):
        raise typer.Exit(1)
    if run_result.failed_checks:
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
