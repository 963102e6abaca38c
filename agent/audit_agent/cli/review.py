"""`audit-agent agree`, `apply` and `diff`: the review loop before every dataset version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from audit_agent.cli.common import DataArg, IdCol, LabelCol, TextCol, app, fail, out_console
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
