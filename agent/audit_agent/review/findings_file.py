"""Read back the findings.jsonl an earlier `audit-agent run` wrote."""

from __future__ import annotations

from pathlib import Path

import audit_agent.checks  # noqa: F401  (registers every kind, so each line's evidence validates)
from audit_agent.errors import InputError
from audit_agent.findings import Finding


def read_findings(path: Path) -> list[Finding]:
    """Findings from a findings.jsonl; a line that is not a finding is a one-line error naming it."""
    if not path.exists():
        raise InputError(path, "findings file not found")
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(Finding.model_validate_json(line))
        except ValueError:
            raise InputError(path, f"line {lineno}: not a finding written by this version of audit-agent") from None
    return out
