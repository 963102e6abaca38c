"""The three review-loop commands end to end (read, compute, write), for the CLI and the library:
`agree_files`, `apply_files`, `diff_folders`. Every input is checked before anything is written."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from audit_agent.dataset import Dataset
from audit_agent.errors import InputError
from audit_agent.review.agree import Agreement, agreement, flagged_rows
from audit_agent.review.apply import ApplyPlan
from audit_agent.review.diff import AuditDiff, diff_audits, read_audit
from audit_agent.review.reviewer_csv import read_review_file, read_two_columns


def _load(data: Path, text_col: str | None, label_col: str | None, id_col: str | None) -> Dataset:
    from audit_agent.io.loader import load_dataset

    return load_dataset(data, text_col=text_col, label_col=label_col, id_col=id_col)


def agree_files(files: Sequence[Path], *, columns: tuple[str, str] | None = None, data: Path | None = None,
                findings: Path | None = None, common_only: bool = False, out: Path | None = None,
                text_col: str | None = None, label_col: str | None = None, id_col: str | None = None
                ) -> tuple[Agreement, dict[str, Path]]:
    """Two reviewer files (or one with two label columns) -> agreement.md and agreement.json in `out`
    (default: the folder of the first file)."""
    from audit_agent.report.review_outputs import write_agreement
    from audit_agent.review.findings_file import read_findings

    if columns is not None:
        if len(files) != 1:
            raise InputError(files[0] if files else "agree", "--columns compares two columns of ONE file; "
                                                            f"got {len(files)} files")
        a, b = read_two_columns(files[0], *columns)
    else:
        if len(files) != 2:
            raise InputError(files[0] if files else "agree", f"expected two reviewer files, got {len(files)} "
                                                            "(or one file with --columns A B)")
        a, b = read_review_file(files[0]), read_review_file(files[1])
        for f in (a, b):
            if f.kind not in ("reviewer", "review_sample"):
                raise InputError(f.path, f"is a {f.kind} file, not a reviewer's labels")
    known = _load(data, text_col, label_col, id_col).label_set if data is not None else None
    flagged = flagged_rows(read_findings(findings)) if findings is not None else None
    result = agreement(a, b, flagged=flagged, common_only=common_only, known_labels=known,
                       known_from=data.name if data is not None else "the files' label column")
    if findings is not None:
        result.flagged_source = findings.name
    return result, write_agreement(result, out if out is not None else files[0].parent)


def apply_files(data: Path, decisions: Sequence[Path], *, out: Path | None = None, allow_new_labels: bool = False,
                text_col: str | None = None, label_col: str | None = None, id_col: str | None = None
                ) -> tuple[ApplyPlan, dict[str, Path]]:
    """DATA + decision files -> the next version (default `<stem>.next<ext>` beside DATA) and
    changelog.csv/.md beside it."""
    from audit_agent.report.review_outputs import apply_decisions

    if not decisions:
        raise InputError(data, "no decision files: pass --decisions FILE (repeatable)")
    files = [read_review_file(p) for p in decisions]
    ds = _load(data, text_col, label_col, id_col)
    target = out if out is not None else data.with_name(f"{data.stem}.next{data.suffix}")
    return apply_decisions(ds, files, target, allow_new_labels=allow_new_labels)


def diff_folders(old: Path, new: Path, *, out: Path | None = None) -> tuple[AuditDiff, dict[str, Path]]:
    """Two `run` output folders -> diff.md and diff.json in `out` (default: the new folder)."""
    from audit_agent.report.diff_outputs import write_diff

    result = diff_audits(read_audit(old), read_audit(new))
    return result, write_diff(result, out if out is not None else new)
