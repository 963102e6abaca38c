"""The rounds of the agent loop: round 1 judges the suspects, the stratified random sample and the
calibration canaries (shuffled among them); the canaries then say how far to trust each judge; every
answer is verified; later rounds take second looks where the first answer and the model-free signals
disagree (jobs/judge_second_look.py), follow up where claims cluster, then extend the random sample,
until the budget is spent, the candidates run out, or the judge turns out not to be informative."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from audit_agent.checks import KINDS
from audit_agent.context import AuditContext
from audit_agent.errors import LLMError
from audit_agent.findings import Finding
from audit_agent.jobs.judge_calibration import Calibration
from audit_agent.jobs.judge_calibrator import Calibrator
from audit_agent.jobs.judge_canaries import Canary, canary_count, mix_canaries
from audit_agent.jobs.judge_followup import Claim, ClusterLog, doubted_rows, find_clusters, plan_followups
from audit_agent.jobs.judge_plan import (
    BudgetPlan,
    LabelIndex,
    Pick,
    plan_budget,
    suspect_rows,
    suspects_from_findings,
)
from audit_agent.jobs.judge_records import Answer, Judged, JudgeSpec, LoopOutcome, is_claim
from audit_agent.jobs.judge_second_look import SECOND_LOOK, LookCandidate
from audit_agent.jobs.judge_second_looker import SecondLooker
from audit_agent.jobs.trace import Trace
from audit_agent.tasks.judge import (
    JudgeOutcome,
    RowInput,
    Verdict,
    judge_batch,
    make_row_input,
    shared_variables,
)
from audit_agent.verify.judge import (
    SignalSource,
    canonical_verdict,
    verify_verdict,
)

Progress = Callable[[int, int | None, str], None]
UNREACHABLE_AFTER = 3
"""Calls that fail (after all retries) before any succeeds: the model is unreachable, exit 3."""
CLUSTER_MIN_FLAGGED = 2
"""Claims on one label pair, label or template frame that make a cluster."""
MIN_ROUND_ROWS = 10


class AgentLoop:
    """State of one run of the loop (see the module docstring)."""

    def __init__(self, ctx: AuditContext, findings: Sequence[Finding], judges: Sequence[JudgeSpec], trace: Trace,
                 progress: Progress | None, budget_calls: int) -> None:
        self.ctx, self.findings, self.judges, self.trace, self.progress = ctx, findings, list(judges), trace, progress
        self.cfg = ctx.config
        self.budget_rows = budget_calls // len(self.judges)
        frame = ctx.train.frame
        self.index = LabelIndex([str(i) for i in frame["id"].tolist()],
                                [None if v is None or v != v else str(v) for v in frame["label"].tolist()],
                                seed=self.cfg.seed)
        self.texts = frame["text"].tolist()
        self.signals = SignalSource(ctx)
        self.shared = {j.role: shared_variables(ctx, j.framing) for j in self.judges}
        self.judged: list[Judged] = []
        self.taken: set[str] = set()
        self.spent = 0
        self.failed = 0
        self.planned = 0
        self.free_sample: set[str] = set()
        self.plan: BudgetPlan | None = None
        self._own_tops: tuple[np.ndarray | None, list[str | None] | None] | None = None
        own, tops = self._own_and_tops()
        unsure = set(suspects_from_findings(findings, self.index.id_pos)) | suspect_rows(findings)
        self.calib = Calibrator(self.cfg, self.index, own, tops, unsure, trace)
        self.canary_of: dict[str, Canary] = self.calib.canary_of
        self.calibration: dict[str, Calibration] = self.calib.calibration
        self.looks = SecondLooker(ctx, self.judges, self.budget_rows, self.trace)

    # -- the plan ------------------------------------------------------------------------------
    def _plan(self) -> tuple[BudgetPlan, list[Canary]]:
        jc = self.cfg.judge
        suspects = suspects_from_findings(self.findings, self.index.id_pos)
        n_canaries = canary_count(self.budget_rows, jc.canary_share, jc.min_canaries)
        plan = plan_budget(suspects, self.index, self.budget_rows, n_canaries, self.cfg.seed,
                           floor_per_label=self.cfg.sample.per_label, sample_share=jc.sample_share,
                           reserve=self.looks.plan_reserve, reserve_below=self.looks.reserve_below)
        self.plan = plan
        return plan, self.calib.first_batch(plan.first_round(), n_canaries)

    def _first_round(self, plan: BudgetPlan, canaries: list[Canary]) -> list[Pick]:
        """The real picks with the canaries at random places among them (same row-id format, same prompt)."""
        return mix_canaries(plan.first_round(), canaries, self.cfg.seed + 31)

    # -- one round -----------------------------------------------------------------------------
    def _round(self, picks: list[Pick], round_no: int) -> str | None:
        """Judge `picks` with every judge; returns why the budget stopped it, or None."""
        self.planned += len(picks)
        if self.progress is not None:
            self.progress(0, self.planned, f"judge round {round_no}")
        for p in picks:
            self.taken.add(p.row_id)
            self.trace.event("pick", round=round_no, row_id=p.row_id, label=p.label, kind=p.kind, reason=p.reason,
                             in_sample=p.in_sample)
        chunk = max(1, self.cfg.llm.max_concurrency)
        done: list[Judged] = []
        exhausted: str | None = None
        for start in range(0, len(picks), chunk):
            batch = picks[start:start + chunk]
            rows = [make_row_input(self.ctx, p.row_id, self.texts[self.index.id_pos[p.row_id]], p.label) for p in batch]
            self.spent += len(batch)
            outcomes = {}
            for judge in self.judges:
                t0 = time.perf_counter()
                outcomes[judge.role] = judge_batch(judge.client, self.ctx, rows, shared=self.shared[judge.role],
                                                   framing=judge.framing)
                per_call = round((time.perf_counter() - t0) / len(rows), 3)
                for pick, out in zip(batch, outcomes[judge.role], strict=True):
                    self.trace.event("call", round=round_no, row_id=pick.row_id, judge=judge.role,
                                     ok=out.verdict is not None, error=out.error, budget_refused=out.budget,
                                     seconds=per_call, truncated=out.row.truncated)
                    if out.budget:
                        exhausted = out.error or "budget exhausted"
            for i, pick in enumerate(batch):
                j = self._collect(pick, rows[i], round_no, {role: outs[i] for role, outs in outcomes.items()})
                if j is not None:
                    done.append(j)
            if exhausted:
                break
        self._finish_round(done, round_no)
        return exhausted

    def _collect(self, pick: Pick, row: RowInput, round_no: int, outs: dict[str, JudgeOutcome]) -> Judged | None:
        first = outs["first"]
        if first.budget:
            return None
        if self.progress is not None:
            self.progress(1, None, f"judge round {round_no}")
        if first.verdict is None:
            self.failed += 1
            if not self.judged and self.failed >= UNREACHABLE_AFTER:
                raise LLMError(f"{self.judges[0].client.description}: the first {self.failed} calls all failed "
                               f"after retries, none succeeded ({str(first.error)[:200]})")
            return None
        j = Judged(pick, row, round_no, canary=self.canary_of.get(pick.row_id) if pick.kind == "canary" else None)
        for role, out in outs.items():
            if out.verdict is None:
                continue
            verdict, raw = canonical_verdict(out.verdict, self.index.label_set)
            j.answers[role] = Answer(verdict, raw)
            self.trace.event("verdict", round=round_no, row_id=pick.row_id, judge=role,
                             **out.verdict.model_dump(mode="json"))
        self.judged.append(j)
        return j

    def _finish_round(self, done: list[Judged], round_no: int) -> None:
        """Calibrate after every round (on every canary and confident sample row so far), then verify:
        the whole run when that changed what the calibration decides, else the round's answers."""
        assert self.plan is not None
        recalibrated = self.calib.recalibrate(self.judges, self.judged, self.plan.sample_rows(), round_no)
        for j in self.judged if recalibrated and round_no > 1 else done:
            if j.canary is not None:
                continue
            for role, answer in j.answers.items():
                self._verify(j, role, answer, round_no)

    def _cal(self, role: str) -> Calibration | None:
        """A judge's calibration; a second look is the first judge's model, so it has the first's."""
        return self.calibration.get("first" if role == SECOND_LOOK else role)

    def _min_backing(self, cal: Calibration) -> int:
        return self.calib.min_backing(cal)

    def _verify(self, j: Judged, role: str, answer: Answer, round_no: int) -> None:
        cal = self._cal(role) or Calibration()
        sig = self.signals.for_row(j.row.row_id, answer.verdict.best_label, j.row.label)
        answer.verification = verify_verdict(
            answer.verdict, text=j.row.full_text, given_label=j.row.label, label_set=self.index.label_set,
            signals=sig, min_backing=self._min_backing(cal), judge_informative=cal.informative)
        if answer.raw_label is not None:
            answer.verification.evidence["best_label_as_written"] = answer.raw_label
        self.trace.event("verification", round=round_no, row_id=j.row.row_id, judge=role,
                         verified=answer.verification.verified, **answer.verification.evidence)

    # -- the loop ------------------------------------------------------------------------------
    def informative(self, role: str = "first") -> bool:
        cal = self._cal(role)
        return cal is None or cal.informative is not False

    def claims(self) -> list[Claim]:
        """Claims of informative judges on real rows, for the follow-up planner."""
        out = []
        for j in self.judged:
            if j.canary is not None:
                continue
            for role, a in j.answers.items():
                if self.informative(role) and is_claim(a, j.row.label):
                    verified = bool(a.verification and a.verification.verified
                                    and a.verdict.verdict is Verdict.CONTRADICTED)
                    out.append(Claim(j.row.row_id, j.row.label, a.verdict.best_label, verified))
                    break
        return out

    def run(self) -> LoopOutcome:
        plan, canaries = self._plan()
        first = self._first_round(plan, canaries)
        self.trace.event("plan", round=1, labels=len(self.index.label_set), rows=len(first),
                         budget_calls=self.budget_rows * len(self.judges), judges=len(self.judges),
                         budget_rows=self.budget_rows, canaries=len(canaries), suspects_named=plan.suspects_named,
                         suspects=len(plan.suspects), sample=plan.sample_target, followup_budget=plan.followup_budget,
                         model=self.judges[0].client.description)
        if not first:
            return self._outcome(plan, "nothing to judge", "candidates", 0)
        exhausted = self._round(first, 1)
        rounds = 1
        templates = [f for f in self.findings if f.check in KINDS and KINDS[f.check].frames(f) and f.split == "train"]
        log = ClusterLog()
        batch = max(MIN_ROUND_ROWS, math.ceil(plan.followup_budget / 3))
        calibrated_twice = False
        while True:
            if exhausted:
                return self._outcome(plan, _budget_reason(exhausted), "budget", rounds)
            remaining = self.budget_rows - self.spent
            if remaining <= 0:
                return self._outcome(plan, "budget spent", "budget", rounds)
            if not calibrated_twice and self.calib.inconclusive() and remaining >= 2 \
                    and rounds < self.cfg.sample.max_rounds:
                calibrated_twice = True
                picks = self.calib.second_batch(plan, self.taken, self.free_sample, remaining)
            else:
                picks = []
            if picks:
                self.trace.event("followup", round=rounds, clusters=[], rows=len(picks),
                                 decision=f"round {rounds + 1}: the canaries left the judge on a boundary "
                                          f"({self.calibration['first'].verdict}); more canaries among random rows")
                rounds += 1
                exhausted = self._round(picks, rounds)
                continue
            if not self.informative("first"):
                self.trace.event("followup", round=rounds, clusters=[], rows=0,
                                 decision="stop: the judge is not informative on the calibration canaries")
                return self._outcome(plan, "the judge is not informative on the calibration canaries: its claims "
                                     "drive nothing, and the rest of the budget was not spent", "not_informative", rounds)
            if rounds >= self.cfg.sample.max_rounds:
                return self._outcome(plan, "max rounds reached", "max_rounds", rounds)
            looks = self._choose_looks(remaining)
            room = remaining - len(looks)
            claims = self.claims()
            live = log.live(find_clusters(claims, templates, min_flagged=CLUSTER_MIN_FLAGGED),
                            {c.row_id for c in claims})
            picks, keys = plan_followups(live, self.index, self.taken, self.cfg.sample.followup_per_cluster,
                                         rank_by_label=self._ranker(), rank_by_doubt=self._doubter(), limit=room)
            room -= self.looks.reserve(self.judged, room, len(looks), batch) if len(picks) < room else 0
            log.record(picks, keys)
            own, tops = self._own_and_tops()
            picks += doubted_rows(self.index, self.taken | {p.row_id for p in picks}, own, tops,
                                  min(room, max(batch, len(picks))) - len(picks))
            extra, free = plan.extend_sample((self.taken - self.calib.swapped_rows()) | self.free_sample,
                                             max(0, min(room, max(batch, len(picks))) - len(picks)))
            self.free_sample.update(free)
            picks = [*picks, *extra]
            self.trace.event("followup", round=rounds, rows=len(picks), sample_rows=len(extra), second_looks=len(looks),
                             clusters=[{"kind": c.kind, "key": c.key, "flagged": c.flagged} for c in live],
                             decision=f"round {rounds + 1}: {len(looks)} second looks, {len(picks) - len(extra)} "
                                      f"follow-up rows in {len(live)} clusters, {len(extra)} more random rows"
                                      if picks or looks else "stop: every labelled row has been judged")
            if not picks and not looks:
                return self._outcome(plan, "candidates ran out: every labelled row has been judged", "candidates",
                                     rounds)
            rounds += 1
            self.planned += len(looks)
            self.spent += len(looks)
            exhausted = self.looks.ask(looks, self.judged, rounds, self._verify) or self._round(picks, rounds)

    def _outcome(self, plan: BudgetPlan | None, reason: str, kind: str, rounds: int) -> LoopOutcome:
        return LoopOutcome(self.judged, reason, kind, rounds, self.failed, plan, self.calibration,
                           self.free_sample, self.budget_rows, self.looks.cap,
                           self.looks.final_note(self.informative("first")))

    def _choose_looks(self, remaining: int) -> list[LookCandidate]:
        if not self.informative("first"):
            return []
        cal = self._cal("first") or Calibration()
        return self.looks.choose(self.judged, self.signals.for_row, self._min_backing(cal), remaining)

    def _own_and_tops(self) -> tuple[np.ndarray | None, list[str | None] | None]:
        """The classifier's probability of each row's own label, and its top label per row (None
        without a classifier); computed once."""
        if self._own_tops is None:
            own = self.signals.own_probability()
            tops = [self.signals.oof_top(p) for p in range(len(self.index.ids))] if own is not None else None
            self._own_tops = own, tops
        return self._own_tops

    def _ranker(self) -> Callable[[Sequence[int], str], list[int]] | None:
        return self.signals.rank_rows_by_label if self.signals.oof is not None else None

    def _doubter(self) -> Callable[[Sequence[int]], list[int]] | None:
        return self.signals.rank_rows_by_doubt if self.signals.oof is not None else None


def _budget_reason(message: str) -> str:
    """'budget exhausted', plus which limit when the client said so (calls, tokens or USD)."""
    text = str(message)
    detail = text.split("LLM budget:", 1)[1].strip() if "LLM budget:" in text else ""
    return f"budget exhausted ({detail})" if detail else "budget exhausted"

