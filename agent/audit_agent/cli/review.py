"""`audit-agent agree`, `apply`, `diff` and `stress`: the review loop before every dataset version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from audit_agent.cli.common import (
    ApiBaseOpt,
    ConfigOpt,
    DataArg,
    IdCol,
    LabelCol,
    OutOpt,
    SeedOpt,
    TextCol,
    app,
    command_errors,
    console,
    fail,
    out_console,
)
from audit_agent.errors import AuditError

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
        fail(exc)
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
        fail(exc)
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
        fail(exc)
        return
    _print_all(diff_summary(result, paths))


@app.command("stress")
def stress_command(
    data: Annotated[Path, typer.Argument(help="Labelled rows: the eval rows unless --eval is given, the checker's "
                                              "training rows unless --train is given (CSV, TSV, JSONL, JSON, "
                                              "Parquet, ...).", show_default=False)],
    model: Annotated[str, typer.Option("--model", help="The model to stress: any litellm model, or openai/NAME "
                                                       "with --api-base for your own OpenAI-compatible server.")],
    eval_path: Annotated[Path | None, typer.Option("--eval", help="Eval rows to score (default: DATA).")] = None,
    train: Annotated[Path | None, typer.Option("--train", help="Training rows for the checker classifier that "
                                                               "verifies each variant keeps its label "
                                                               "(default: DATA).")] = None,
    out: OutOpt = Path("audit"),
    api_base: ApiBaseOpt = None,
    config: ConfigOpt = None,
    kind: Annotated[list[str] | None, typer.Option("--kind", help="Only this variant kind (repeatable): very_short, "
                                                                  "typos, no_punctuation, lowercase, mixed_intent, "
                                                                  "indirect, emotional.")] = None,
    max_rows: Annotated[int | None, typer.Option(min=1, help="Score at most this many eval rows (seeded "
                                                             "sample).")] = None,
    max_calls: Annotated[int | None, typer.Option(help="At most this many LLM calls (default: one per text).")] = None,
    text_col: TextCol = None,
    label_col: LabelCol = None,
    id_col: IdCol = None,
    seed: SeedOpt = None,
) -> None:
    """Score a model on the eval rows and on messy variants of them (very short, typos, no punctuation,
    lowercase, mixed intent, indirect, emotional), each verified to keep its label; writes stress.md
    and stress.json to --out. Exit codes: 0 done, 2 bad input or config, 3 the model failed."""
    from audit_agent.stress_api import stress
    from audit_agent.tasks.stress_variants import STRESS_KINDS

    with command_errors(), console.status("Stressing the model"):
        res = stress(data, model=model, eval=eval_path, train=train, api_base=api_base, config=config,
                     kinds=kind or STRESS_KINDS, max_rows=max_rows, seed=seed, max_calls=max_calls, out=out,
                     text_col=text_col, label_col=label_col, id_col=id_col)
    table = Table(title=f"stress: {res.model} ({res.rows} rows)")
    for col in ("variant", "scored", "accuracy", "change", "dropped"):
        table.add_column(col, justify="left" if col in ("variant", "dropped") else "right")
    for s in [res.clean, *res.per_kind]:
        table.add_row(s.kind, str(s.scored), "-" if s.accuracy is None else f"{s.accuracy:.1%}",
                      "" if s.drop is None or s.kind == "clean" else f"{-s.drop:+.1%}",
                      ", ".join(f"{n} {r}" for r, n in s.dropped.items()))
    out_console.print(table)
    for note in res.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    out_console.print(f"Wrote {out / 'stress.md'} and {out / 'stress.json'}")
