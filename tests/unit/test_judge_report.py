"""The judge's section of report.md and summary.json: plan, calibration (and what it means), the
label error rate per label, two judges' kappa and disagreements."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.io.loader import load_dataset
from audit_agent.jobs.judge import JudgeSummary, PlanSummary
from audit_agent.jobs.judge_calibration import calibrate
from audit_agent.jobs.judge_stats import Disagreement, agreement, error_estimate
from audit_agent.report import outputs
from audit_agent.report.markdown import render_report
from audit_agent.run_result import RunResult


def _ctx(tmp_path: Path) -> AuditContext:
    path = tmp_path / "train.csv"
    pd.DataFrame({"id": ["a", "b", "c", "d"], "text": ["w x", "y z", "p q", "r s"],
                  "label": ["refund", "refund", "balance", "balance"]}).to_csv(path, index=False)
    return AuditContext(train=load_dataset(path, id_col="id"), config=AuditConfig())


def _summary(right: int) -> JudgeSummary:
    """20 swapped canaries, `right` of them caught (one more flagged as ambiguous); 40 confident rows
    judged anyway (30 from the random sample, 10 follow-ups), 38 of them called supported."""
    swapped = [("contradicted", True)] * right + [("ambiguous", False)] + [("supported", False)] * (19 - right)
    confirmed = [("supported", True)] * 38 + [("contradicted", False)] * 2
    cal = calibrate(swapped, confirmed, min_low=0.5, canaries=20, from_sample=30, from_followups=10)
    s = JudgeSummary(model="sim/model", where_data_went="nowhere", rows_judged=180, real_rows_judged=160,
                     canaries_judged=20, verdicts={"supported": 150, "contradicted": 8, "ambiguous": 2},
                     verified=6, unverified=4, stop_reason="budget spent", stop_kind="budget", rounds=3,
                     plan=PlanSummary(180, 20, 36, 36, 40, 84, {"suspect": 36, "sample": 40, "canary": 20,
                                                               "followup": 84}),
                     calibration=cal)
    if cal.informative:
        s.error_estimate = error_estimate({"refund": [True] + [False] * 19, "balance": [False] * 20},
                                          {"refund": 300, "balance": 300}, {"refund": 2, "balance": 1}, "verified")
    return s


def test_the_report_says_how_far_to_trust_the_judge_and_the_error_rate(tmp_path: Path) -> None:
    result = RunResult(ctx=_ctx(tmp_path), findings=[], statuses=[], seconds=1.0, judge=_summary(right=18))
    text = render_report(result)
    assert "Rows judged: 180 (160 training rows + 20 calibration canaries)" in text
    assert ("Its balanced accuracy on known cases: **92%** (95% interval 81-97%), the mean of its accuracy on "
            "labels deliberately swapped (18 of 20 caught with the right label, 19 flagged at all) and on confident "
            "rows shown with their own label (38 of 40 called supported: 30 rows of the random sample and 10 "
            "follow-up rows, judged anyway), so a judge that always gives the same answer scores 50%") in text
    assert "they cost 20 of the judge's calls: the price of knowing how far to trust it" in text
    assert "Its verdicts are informative" in text and "not informative" not in text
    assert "**Label error rate, estimated on a stratified random sample** (40 random rows" in text
    assert "| refund | 300 | 20 | 1 | 5% [1-24%] | 2 |" in text
    assert "Plan for 180 calls: 20 canaries, 36 of the 36 label suspects" in text


def test_an_uninformative_judge_is_named_plainly(tmp_path: Path) -> None:
    result = RunResult(ctx=_ctx(tmp_path), findings=[], statuses=[], seconds=1.0, judge=_summary(right=1))
    text = render_report(result)
    assert ("**This model's verdicts are not informative**: NOT informative: balanced accuracy 50% (95% CI "
            in text)
    assert "no better than always giving the same answer (50%)" in text
    assert "None of its claims is verified" in text and "No label error rate is estimated" in text


def test_two_judges_kappa_and_disagreements_reach_report_and_summary(tmp_path: Path) -> None:
    s = _summary(right=18)
    s.second_model = "sim/other"
    dis = [Disagreement("b", "refund", "supported", "refund", "contradicted", "balance")]
    s.agreement = agreement(["refund", "refund", "balance"], ["balance", "refund", "balance"], ["balance", "refund"],
                            second_judge="sim/other", disagreements=dis)
    result = RunResult(ctx=_ctx(tmp_path), findings=[], statuses=[], seconds=1.0, judge=s)
    text = render_report(result)
    assert "**Two judges on the same rows** (`sim/model` and `sim/other`): they agree on 2 of 3 rows" in text
    assert f"Cohen's kappa {s.agreement.kappa:.2f}" in text
    assert "| `b` | refund | supported refund | contradicted balance |" in text
    summary = outputs.build_summary(result)
    json.dumps(summary)  # serialisable
    assert summary["judge"]["agreement"]["disagreements"][0]["row_id"] == "b"
    cal = summary["judge"]["calibration"]
    assert (cal["swapped"], cal["swapped_correct"], cal["confirmed"], cal["confirmed_sample"]) == (20, 18, 40, 30)
    assert cal["accuracy"] == 0.925 and cal["canaries"] == 20
    assert summary["judge"]["plan"]["canaries"] == 20


def test_second_looks_reach_report_and_summary(tmp_path: Path) -> None:
    from audit_agent.jobs.judge_second_look import SecondLooks

    s = _summary(right=18)
    s.second_looks = SecondLooks(cap=18, taken=7, answered=7, by_reason={"strong_suspect": 5, "quote_only": 2},
                                 outcomes={"verified_contradicted": 3, "same_answer": 2, "supported": 2},
                                 new_verified=3)
    result = RunResult(ctx=_ctx(tmp_path), findings=[], statuses=[], seconds=1.0, judge=s)
    text = render_report(result)
    assert ("- Second looks: 7 row(s) asked again in a second framing (other prompt, labels in another order; at "
            "most 18 calls): 5 whose first answer the model-free signals strongly doubted, 2 \"contradicted\" "
            "claim(s) that failed verification only on their quote. They turned up **3 verified claim(s)**") in text
    assert "2 repeated the first answer, 2 said supported, 0 made a claim that failed verification." in text
    summary = outputs.build_summary(result)
    assert summary["judge"]["second_looks"]["taken"] == 7 and summary["judge"]["second_looks"]["new_verified"] == 3
    none = _summary(right=18)
    none.second_looks = SecondLooks(cap=0, note="second looks are off (judge.second_look_share: 0)")
    text = render_report(RunResult(ctx=_ctx(tmp_path), findings=[], statuses=[], seconds=1.0, judge=none))
    assert "- Second looks: none (second looks are off (judge.second_look_share: 0))" in text
