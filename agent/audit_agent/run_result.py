"""What a run produced: the findings plus the facts the report and summary.json render."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from audit_agent.dataset import AuditContext
from audit_agent.findings import Finding, Severity


@dataclass
class CheckStatus:
    """How one registered check went: ran (with its finding count and time), skipped, or failed."""

    name: str
    state: Literal["ran", "skipped", "failed"]
    findings: int = 0
    seconds: float = 0.0
    reason: str = ""


@dataclass
class JudgeSummary:
    """What the agent loop did, for the report's judge section and summary.json."""

    model: str
    where_data_went: str
    rows_judged: int = 0
    rows_failed: int = 0
    partial: bool = False
    verdicts: dict[str, int] = field(default_factory=dict)
    self_contradictory: int = 0
    verified: int = 0
    unverified: int = 0
    agreement_with_checks: float | None = None
    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    stop_reason: str = ""
    rounds: int = 0
    trace_file: str = ""


@dataclass
class RunResult:
    """Everything the report layer needs. It renders this and adds nothing of its own."""

    ctx: AuditContext
    findings: list[Finding]
    statuses: list[CheckStatus]
    seconds: float
    judge: JudgeSummary | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def count_by_severity(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Severity}
        for f in self.findings:
            counts[f.severity.value] += 1
        return counts

    def by_check(self, name: str) -> list[Finding]:
        return [f for f in self.findings if f.check == name]

    @property
    def verdict(self) -> Literal["ready to tune", "fix first"]:
        """'fix first' when any high-severity finding is verified (unverified claims never decide it)."""
        high = any(f.severity is Severity.HIGH and f.verified for f in self.findings)
        return "fix first" if high else "ready to tune"
