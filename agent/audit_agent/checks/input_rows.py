"""Rows the loader had to drop, trim or clean: reported so nothing is lost silently."""

from __future__ import annotations

from audit_agent.checks.base import Check
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.findings import Evidence, Finding, Severity

_PROBLEMS = {
    "empty_text": (Severity.MEDIUM, "rows with an empty text were left out of the audit"),
    "missing_label": (Severity.MEDIUM, "rows have no label"),
    "oversized_text": (Severity.LOW, "rows are longer than 20,000 characters and were cut for the audit"),
    "label_whitespace": (Severity.LOW, "labels had leading/trailing spaces (stripped)"),
    "no_assistant_turn": (Severity.MEDIUM, "chat records have no assistant turn (no target)"),
}


class InputRowsEvidence(Evidence):
    problem: str
    count: int
    file: str
    notes: list[str]


def _split_findings(ds: Dataset, split: str) -> list[Finding]:
    out = []
    for kind, rows in ds.bad_rows.items():
        severity, what = _PROBLEMS.get(kind, (Severity.LOW, kind.replace("_", " ")))
        out.append(Finding(
            check="input_rows", severity=severity, split=split,  # type: ignore[arg-type]
            message=f"{len(rows)} {what} ({ds.path.name})",
            rows=list(rows[:1000]),
            evidence={"problem": kind, "count": len(rows), "file": str(ds.path), "notes": ds.notes},
        ))
    return out


class InputRows(Check):
    """One finding per kind of bad row, per split."""

    name = "input_rows"
    description = "Rows the loader dropped, cut or cleaned (empty text, missing label, ...)"
    recommendation = "Fix or remove the rows the loader had to drop or clean; they are listed in findings.jsonl."
    Evidence = InputRowsEvidence

    def run(self, ctx: AuditContext) -> list[Finding]:
        findings = _split_findings(ctx.train, "train")
        if ctx.eval is not None:
            findings += _split_findings(ctx.eval, "eval")
        if ctx.real is not None:
            findings += _split_findings(ctx.real, "real")
        return findings

    def subject(self, f: Finding) -> str | None:
        ev = self.evidence(f, InputRowsEvidence)
        return f"{f.split}: {ev.problem}" if ev is not None else None
