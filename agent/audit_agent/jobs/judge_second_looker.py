"""Second looks in the loop (`SecondLooker`): how many calls they may take, which rows get one (the
rules are in jobs/judge_second_look.py), and asking the first judge's model again in the second
framing."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from audit_agent.context import AuditContext
from audit_agent.jobs.judge_records import Answer, Judged, JudgeSpec
from audit_agent.jobs.judge_second_look import (
    PLAN_RESERVE_SHARE,
    RESERVE_BELOW_SCORE,
    RESERVE_SHARE,
    SECOND_LOOK,
    LookCandidate,
    SignalFor,
    choose_looks,
)
from audit_agent.jobs.trace import Trace
from audit_agent.tasks.judge import judge_batch, second_framing, shared_variables
from audit_agent.verify.judge import canonical_verdict

Verify = Callable[[Judged, str, Answer, int], None]


class SecondLooker:
    """The second looks of one run: `cap` calls at most (`judge.second_look_share` of the judge's
    calls; none with two judges), the first judge's client in the second framing."""

    def __init__(self, ctx: AuditContext, judges: Sequence[JudgeSpec], budget_rows: int, trace: Trace) -> None:
        self.ctx, self.trace = ctx, trace
        cfg = ctx.config
        first = judges[0]
        self.spec = JudgeSpec(first.client, f"{first.name} (second look, second framing)",
                              second_framing(ctx, cfg.seed), SECOND_LOOK)
        self.cap, self.note = 0, ""
        if len(judges) > 1:
            self.note = "no second looks with two judges: every row is already judged twice"
        elif cfg.judge.second_look_share <= 0:
            self.note = "second looks are off (judge.second_look_share: 0)"
        else:
            self.cap = round(cfg.judge.second_look_share * budget_rows)
        self.shared = shared_variables(ctx, self.spec.framing) if self.cap else {}
        self.considered = False
        """Whether any round after round 1 had budget left to consider second looks."""

    def final_note(self, informative: bool) -> str:
        """Why no second look was taken, when that is not the rows' doing (see `summarize`);
        `informative`: whether the canaries left the judge informative (an uninformative judge's answers
        get no second look)."""
        if self.note or not self.cap or self.considered:
            return self.note
        if not informative:
            return "the judge is not informative on the calibration canaries, so no answer of it gets one"
        return "no budget was left for them after round 1 (and a second batch of canaries, if any)"

    @property
    def plan_reserve(self) -> int:
        """Calls the plan holds back from the weakest suspects for second looks (and the score below
        which a suspect gives way to them)."""
        return math.ceil(PLAN_RESERVE_SHARE * self.cap)

    reserve_below = RESERVE_BELOW_SCORE

    def left(self, judged: Sequence[Judged]) -> int:
        return self.cap - sum(j.second_look is not None for j in judged)

    def choose(self, judged: Sequence[Judged], signal_for: SignalFor, min_backing: int,
               remaining: int) -> list[LookCandidate]:
        """The rows for this round's second looks, within what is left of the cap and the budget."""
        n = min(self.left(judged), remaining)
        self.considered = self.considered or n > 0
        return choose_looks(judged, signal_for, min_backing, n) if n > 0 else []

    def reserve(self, judged: Sequence[Judged], room: int, looks: int, batch: int) -> int:
        """Calls held back from a round that would spend the rest of the budget, for second looks on
        the rows it judges (unused ones go to more random rows in the round after)."""
        left = self.left(judged) - looks
        if left <= 0 or room > batch or room < 2:
            return 0
        return min(left, max(1, math.ceil(RESERVE_SHARE * room)))

    def ask(self, looks: Sequence[LookCandidate], judged: Sequence[Judged], round_no: int,
            verify: Verify) -> str | None:
        """Ask again about rows already judged; each answer is verified (`verify`) like any other.
        The caller counts the calls. Returns why the budget stopped it, or None."""
        rows = {j.row.row_id: j for j in judged if j.canary is None}
        chunk = max(1, self.ctx.config.llm.max_concurrency)
        label_set = self.ctx.train.label_set
        for start in range(0, len(looks), chunk):
            batch = [(c, rows[c.row_id]) for c in looks[start:start + chunk]]
            for c, j in batch:
                j.second_look = c.reason
                self.trace.event("pick", round=round_no, row_id=c.row_id, label=j.row.label, kind=SECOND_LOOK,
                                 reason=c.why, in_sample=j.pick.in_sample)
            outs = judge_batch(self.spec.client, self.ctx, [j.row for _, j in batch], shared=self.shared,
                               framing=self.spec.framing)
            exhausted = None
            for (_, j), out in zip(batch, outs, strict=True):
                self.trace.event("call", round=round_no, row_id=j.row.row_id, judge=SECOND_LOOK,
                                 ok=out.verdict is not None, error=out.error, budget_refused=out.budget,
                                 truncated=out.row.truncated)
                if out.budget:
                    exhausted = out.error or "budget exhausted"
                if out.verdict is None:
                    continue
                verdict, raw = canonical_verdict(out.verdict, label_set)
                j.answers[SECOND_LOOK] = answer = Answer(verdict, raw)
                self.trace.event("verdict", round=round_no, row_id=j.row.row_id, judge=SECOND_LOOK,
                                 **out.verdict.model_dump(mode="json"))
                verify(j, SECOND_LOOK, answer, round_no)
            if exhausted:
                return exhausted
        return None
