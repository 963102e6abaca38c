"""`audit-agent guide` and `audit-agent paraphrase`: the LLM jobs on their own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from audit_agent.api import Columns
from audit_agent.cli.common import (
    ApiBaseOpt,
    ConfigOpt,
    DataArg,
    GuideOpt,
    IdCol,
    LabelCol,
    ModelOpt,
    OutOpt,
    RealOpt,
    RichProgress,
    TextCol,
    app,
    command_errors,
    console,
    make_config,
    out_console,
    progress_bars,
)
from audit_agent.context import AuditContext
from audit_agent.errors import InputError
from audit_agent.findings import Finding
from audit_agent.jobs.runner import label_job_skip
from audit_agent.llm.base import LLMClient

FindingsOpt = Annotated[Path | None, typer.Option("--findings", help="findings.jsonl of an earlier `run` "
                                                                    "(default: run the deterministic checks now).")]
MaxCallsOpt = Annotated[int | None, typer.Option(help="At most this many LLM calls.")]


@contextmanager
def _llm_job(data: Path, *, guide: Path | None = None, real: Path | None, columns: Columns, config: Path | None,
             model: str | None, api_base: str | None, max_calls: int | None, findings: Path | None,
             job: str) -> Iterator[tuple[AuditContext, list[Finding], LLMClient]]:
    """What the guide and paraphrase commands share: config, the audit's findings (from an earlier
    run's findings.jsonl, else the deterministic checks now), a started model holding the whole
    `max_calls` budget as this job's share."""
    from audit_agent.api import load_context, run_checks, select_checks
    from audit_agent.llm.capped import CappedClient
    from audit_agent.llm.factory import open_client
    from audit_agent.review.findings_file import read_findings

    cfg = make_config(config, llm__model=model, llm__api_base=api_base, llm__budget__max_calls=max_calls)
    with progress_bars() as bars:
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
    max_calls: MaxCallsOpt = None,
) -> None:
    """Rewrite the annotation guide: a plain definition, what it is not and real examples per label,
    a tie-break rule per colliding label pair; writes revised_guide.md, a diff against --guide and
    relabel_candidates.csv (relabel after the rules change, not before)."""
    from audit_agent.jobs.guide import run_guide
    from audit_agent.report.guide_outputs import write_guide_outputs

    with command_errors():
        with _llm_job(data, guide=old_guide, real=real, columns=Columns(text_col, label_col, id_col), config=config,
                      model=model, api_base=api_base, max_calls=max_calls, findings=findings,
                      job="guide") as (ctx, found, client), console.status("Rewriting the guide"):
            res = run_guide(ctx, found, client, old_guide_name=old_guide.name if old_guide else None)
        paths = write_guide_outputs(out, res)
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
    max_calls: MaxCallsOpt = None,
) -> None:
    """Propose messy, real-style rewrites of over-polished rows (verified: same label, messier, not a
    near duplicate, no template frame) as paraphrases.csv for human review; with --accept, merge the
    accepted ones into a new dataset file (the original is never touched)."""
    from audit_agent.jobs.paraphrase import accepted_rows, run_paraphrase
    from audit_agent.report.paraphrase_outputs import read_review_file, write_merged, write_review_batch

    with command_errors():
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
    out_console.print(f"Paraphrases: {res.rows_selected} rows, {res.candidates} candidates, {res.passed} passed "
                      f"verification ({res.pass_share:.0%}); {res.seconds_per_row:.1f} s per row.")
    out_console.print(f"Review {paths['csv']} (set status to 'accepted' or 'rejected'), then run "
                      f"audit-agent paraphrase {data} --accept {paths['csv']} --out {out}")
