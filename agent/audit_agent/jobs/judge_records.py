"""The records of the agent loop: a judge (`JudgeSpec`), its answer on a row (`Answer`), a judged row
(`Judged`) and what a run of the loop returns (`LoopOutcome`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from audit_agent.jobs.judge_calibration import Calibration
from audit_agent.jobs.judge_canaries import Canary
from audit_agent.jobs.judge_plan import BudgetPlan, Pick
from audit_agent.llm.base import LLMClient
from audit_agent.tasks.judge import DEFAULT_FRAMING, Framing, JudgeVerdict, RowInput, Verdict
from audit_agent.verify.judge import Verification, self_contradictory


@dataclass
class JudgeSpec:
    """One judge: its client, how it is asked, and its name in the report."""

    client: LLMClient
    name: str
    framing: Framing = DEFAULT_FRAMING
    role: str = "first"


@dataclass
class Answer:
    """One judge's answer on one row; `verification` is filled once the round's calibration is known
    (never for canaries)."""

    verdict: JudgeVerdict
    raw_label: str | None
    verification: Verification | None = None


@dataclass
class Judged:
    """One judged row: why it was picked, what each judge said, and (for canaries) the known answer."""

    pick: Pick
    row: RowInput
    round: int
    answers: dict[str, Answer] = field(default_factory=dict)
    canary: Canary | None = None
    second_look: str | None = None
    """Why the row got a second look (jobs/judge_second_look.py), once it was asked."""


def is_claim(a: Answer | None, given: str) -> bool:
    """A verdict that flags the row (contradicted or ambiguous) and does not contradict itself."""
    return a is not None and a.verdict.verdict is not Verdict.SUPPORTED and not self_contradictory(a.verdict, given)


@dataclass
class LoopOutcome:
    judged: list[Judged]
    stop_reason: str
    stop_kind: str
    rounds: int
    failed: int
    plan: BudgetPlan | None
    calibration: dict[str, Calibration]
    free_sample_rows: set[str]
    budget_rows: int
    look_cap: int = 0
    look_note: str = ""
