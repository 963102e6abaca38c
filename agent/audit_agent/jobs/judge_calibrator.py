"""Calibration in the loop (`Calibrator`): which canaries to ask (mostly swapped: the confident rows the
judge reads anyway are confirmed cases already), which judged rows count as confirmed cases, each
judge's calibration after every round (jobs/judge_calibration.py), and whether a second batch of
canaries is needed."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from audit_agent.config import AuditConfig
from audit_agent.jobs.judge_calibration import Calibration, calibrate
from audit_agent.jobs.judge_canaries import Canary, choose_canaries, confident, mix_canaries
from audit_agent.jobs.judge_plan import BudgetPlan, LabelIndex, Pick
from audit_agent.jobs.judge_records import Judged, JudgeSpec
from audit_agent.jobs.trace import Trace


class Calibrator:
    """The calibration state of one run. `sure`: per row, whether it is confident (the classifier's top
    label is its own, p >= `CONFIDENT_P`) and no label-suspect finding names it (`unsure` ids): canary
    material, and a confirmed case whenever the judge reads it with its own label."""

    def __init__(self, cfg: AuditConfig, index: LabelIndex, own_p: np.ndarray | None,
                 tops: Sequence[str | None] | None, unsure: Collection[str], trace: Trace) -> None:
        self.cfg, self.index, self.own_p, self.tops, self.trace = cfg, index, own_p, tops, trace
        mask = confident(index.labels, own_p, tops)
        self.sure = {rid for rid, ok in zip(index.ids, mask.tolist(), strict=True) if ok and rid not in unsure}
        self.unsure = set(unsure)
        self.canary_of: dict[str, Canary] = {}
        self.calibration: dict[str, Calibration] = {}

    # -- choosing canaries ---------------------------------------------------------------------
    def first_batch(self, picks: Sequence[Pick], n: int) -> list[Canary]:
        """`n` canaries for round 1, away from its `picks`; swapped ones as far as the confident rows among
        the picks (confirmed cases at no extra call) balance them (`swapped_share`)."""
        on_hand = sum(p.row_id in self.sure for p in picks)
        excluded = self.unsure | {p.row_id for p in picks}
        fresh = choose_canaries(self.index.ids, self.index.labels, self.own_p, self.tops, excluded, n,
                                self.cfg.seed, on_hand=(0, on_hand))
        self.canary_of.update({c.row_id: c for c in fresh})
        return fresh

    def second_batch(self, plan: BudgetPlan, taken: set[str], free_sample: set[str], remaining: int) -> list[Pick]:
        """As many new canaries as round 1 had (swapped as far as the cases on hand allow), mixed among as
        many more random sample rows (whose confident rows add confirmed cases); [] when none is left."""
        cal = self.calibration.get("first") or Calibration()
        n = min(plan.canaries, remaining // 2)
        fresh = choose_canaries(self.index.ids, self.index.labels, self.own_p, self.tops, taken | self.unsure, n,
                                self.cfg.seed + 1, on_hand=(cal.swapped, cal.confirmed))
        if not fresh:
            return []
        rows, free = plan.extend_sample((taken - self.swapped_rows()) | free_sample, len(fresh))
        free_sample.update(free)
        self.canary_of.update({c.row_id: c for c in fresh})
        return mix_canaries(rows, fresh, self.cfg.seed + 37)

    def swapped_rows(self) -> set[str]:
        """Rows asked as swapped canaries: not yet judged with their own label, so still open to the sample."""
        return {rid for rid, c in self.canary_of.items() if c.kind == "swapped"}

    # -- calibrating ---------------------------------------------------------------------------
    def confirmed_rows(self, judged: Sequence[Judged]) -> list[Judged]:
        """Training rows judged with their own label (random sample or follow-up) that are `sure`."""
        return [j for j in judged if j.canary is None and j.row.row_id in self.sure]

    def recalibrate(self, judges: Sequence[JudgeSpec], judged: Sequence[Judged], sample: Collection[str],
                    round_no: int) -> bool:
        """Calibrate every judge on every known case so far; True when that changes what its calibration
        decides (informative, signals a claim needs), or on the first call."""
        rows = self.confirmed_rows(judged)
        changed = False
        for judge in judges:
            role = judge.role
            swapped: list[tuple[str, bool]] = []
            confirmed: list[tuple[str, bool]] = []
            for j in judged:
                a = j.answers.get(role)
                if j.canary is None or a is None:
                    continue
                right = j.canary.is_right(a.verdict.verdict.value, a.verdict.best_label)
                (swapped if j.canary.kind == "swapped" else confirmed).append((a.verdict.verdict.value, right))
            asked = len(swapped) + len(confirmed)
            read = [j for j in rows if role in j.answers]
            from_rows = [(v, v == "supported") for v in (j.answers[role].verdict.verdict.value for j in read)]
            in_sample = sum(j.row.row_id in sample for j in read)
            cal = calibrate(swapped, confirmed + from_rows, min_low=self.cfg.judge.min_canary_low, canaries=asked,
                            from_sample=in_sample, from_followups=len(read) - in_sample,
                            failed=max(0, len(self.canary_of) - asked))
            old = self.calibration.get(role)
            self.calibration[role] = cal
            if old is None or (old.swapped, old.confirmed, old.failed) != (cal.swapped, cal.confirmed, cal.failed):
                self.trace.event("calibration", round=round_no, judge=role, model=judge.name, canaries=cal.canaries,
                                 swapped=cal.swapped, swapped_correct=cal.swapped_correct, confirmed=cal.confirmed,
                                 confirmed_correct=cal.confirmed_correct, confirmed_sample=cal.confirmed_sample,
                                 confirmed_followup=cal.confirmed_followup, accuracy=cal.accuracy, low=cal.low,
                                 high=cal.high, informative=cal.informative, verdict=cal.verdict,
                                 confirmed_rows=[j.row.row_id for j in read])
            changed = changed or old is None or self.decides(old) != self.decides(cal)
        return changed

    def min_backing(self, cal: Calibration) -> int:
        """Model-free signals a "contradicted" claim needs: one, or two below `judge.strong_canary_low`."""
        return 1 if cal.low is None or cal.low >= self.cfg.judge.strong_canary_low else 2

    def decides(self, cal: Calibration) -> tuple[bool | None, int]:
        return cal.informative, self.min_backing(cal)

    def inconclusive(self) -> bool:
        """The known cases leave the first judge on a boundary: above the constant-answer baseline but not
        informative, or informative with a lower bound under `strong_canary_low` (so its claims would
        need two signals). One more batch of canaries decides it."""
        cal = self.calibration.get("first")
        if not cal or cal.accuracy is None or cal.low is None or cal.accuracy <= cal.baseline:
            return False
        return cal.informative is False or cal.low < self.cfg.judge.strong_canary_low
