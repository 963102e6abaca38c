"""What a run produced: the findings plus the typed facts the report, summary.json and the library
API render. Nothing here decides anything beyond the verdict's one rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from audit_agent.context import AuditContext
from audit_agent.findings import Finding, Severity
from audit_agent.jobs.guide import GuideResult
from audit_agent.jobs.judge import JudgeSummary
from audit_agent.jobs.paraphrase import ParaphraseResult
from audit_agent.review.run_facts import RunFacts

Verdict = Literal["ready to tune", "fix first", "incomplete"]


@dataclass
class CheckStatus:
    """How one registered check went: ran (with its finding count and time), skipped, or failed."""

    name: str
    state: Literal["ran", "skipped", "failed"]
    findings: int = 0
    seconds: float = 0.0
    reason: str = ""


@dataclass
class LLMUsage:
    """What the run's LLM jobs spent, against the one budget (see config.BudgetConfig)."""

    model: str
    shares: dict[str, int]
    calls: int = 0
    cached: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    server_restarts: int = 0


@dataclass
class JobSkip:
    """An LLM job that did not run, and why."""

    job: str
    reason: str


@dataclass
class RunResult:
    """Everything the report layer needs. It renders this and adds nothing of its own."""

    ctx: AuditContext
    findings: list[Finding]
    statuses: list[CheckStatus]
    seconds: float
    judge: JudgeSummary | None = None
    guide: GuideResult | None = None
    paraphrase: ParaphraseResult | None = None
    llm: LLMUsage | None = None
    skipped_jobs: list[JobSkip] = field(default_factory=list)
    facts: RunFacts | None = None

    def count_by_severity(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Severity}
        for f in self.findings:
            counts[f.severity.value] += 1
        return counts

    def by_check(self, name: str) -> list[Finding]:
        return [f for f in self.findings if f.check == name]

    @property
    def failed_checks(self) -> list[CheckStatus]:
        return [s for s in self.statuses if s.state == "failed"]

    @property
    def verdict(self) -> Verdict:
        """'incomplete' when a check crashed (what it would have found is unknown); else 'fix first'
        when any high-severity finding is verified (unverified claims never decide it); else
        'ready to tune'."""
        if self.failed_checks:
            return "incomplete"
        high = any(f.severity is Severity.HIGH and f.verified for f in self.findings)
        return "fix first" if high else "ready to tune"
