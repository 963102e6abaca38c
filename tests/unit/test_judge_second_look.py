"""Second looks (jobs/judge_second_look.py) with a fake LLM: asked when the model-free signals strongly
doubt a first answer or a contradicted claim failed only on its quote, never otherwise, once per row,
within their share of the budget, never for a canary, verified like any answer, counted in the summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.report.trace_file import read_trace
from tests.fakes import FakeLLM, run_traced
from tests.unit.test_agent_loop import ODD, label_issue, make_ctx, oracle, true_label

BALANCE_ROW = "show the balance"  # the odd refund rows (ids 0-3) read as 'balance'


def ctx_with(margins: dict[int, float], **judge: Any) -> AuditContext:
    """make_ctx (40 rows per label) with the classifier's view of the odd refund rows set: row -> p(balance)
    - p(refund) (p(card_lost) 0.1)."""
    ctx = make_ctx(rows_per_label=40, **judge)
    probs = ctx.features.oof.probs
    for pos, margin in margins.items():
        probs[pos] = [0.45 + margin / 2, 0.1, 0.45 - margin / 2]  # classes: balance, card_lost, refund
    return ctx


def looks_at_odd_rows(first: str = "supported", quote: str | None = None):  # type: ignore[no-untyped-def]
    """A judge that answers the odd rows wrongly (`first`: supported, or contradicted with `quote`) in
    the first framing and rightly in the second; every other row rightly in both."""
    def respond(prompt: str, v: dict[str, Any], s: type) -> dict[str, Any]:
        reply = oracle(prompt, v, s)
        if prompt == "judge" and BALANCE_ROW in v["text"] and v["label"] == "refund":
            if first == "supported":
                return {**reply, "verdict": "supported", "best_label": "refund"}
            return {**reply, "evidence": quote}
        return reply
    return respond


def second_calls(llm: FakeLLM) -> list[tuple[str, str]]:
    return [(v["text"], v["label"]) for p, v, _s in llm.calls if p == "judge_second"]


def test_a_strong_suspect_the_judge_called_supported_gets_one_second_look(tmp_path: Path) -> None:
    llm = FakeLLM(looks_at_odd_rows())
    found, summary = run_traced(ctx_with({0: 0.6, 1: 0.6, 2: 0.6, 3: 0.6}), [label_issue(["0", "1"])], llm,
                                trace_path=tmp_path / "t.jsonl", budget_calls=80)
    asked = second_calls(llm)
    assert sorted(asked) == sorted(set(asked)) and {t for t, _ in asked} == {
        t for _p, v, _s in llm.calls if BALANCE_ROW in v["text"] for t in [v["text"]]}  # each odd row once
    looks = summary.second_looks
    assert looks.taken == looks.answered == 4 and looks.by_reason == {"strong_suspect": 4}
    assert looks.outcomes == {"verified_contradicted": 4} and looks.new_verified == 4
    verified = [f for f in found if f.check == "judge_contradicted" and f.verified]
    assert {str(f.rows[0]) for f in verified} == ODD and len(found) == len({str(f.rows[0]) for f in found})
    assert all(f.evidence.judge == "second_look" and f.evidence.other_verdict == "supported"
               and f.evidence.second_look == "strong_suspect" and f.evidence.verification.backed_by == ["classifier"]
               for f in verified)
    assert summary.verdicts["contradicted"] == 0  # verdict counts are the first answers
    assert llm.n_calls == summary.calls == summary.rows_judged + looks.taken == 80  # a look costs a call
    events = read_trace(tmp_path / "t.jsonl")
    assert sum(e["event"] == "pick" and e["kind"] == "second_look" for e in events) == 4
    assert summary.plan.second_look_cap == 8


def test_no_second_look_when_the_signals_are_weak_or_the_answer_verified(tmp_path: Path) -> None:
    # rows 0 and 1: the classifier prefers 'balance' by only 0.1 (one weak signal): no second look
    llm = FakeLLM(looks_at_odd_rows())
    _, summary = run_traced(ctx_with({0: 0.1, 1: 0.1, 2: 0.6, 3: 0.6}), [], llm, trace_path=tmp_path / "t.jsonl",
                            budget_calls=80)
    texts = {v["text"]: v for _p, v, _s in llm.calls}
    weak = {t for t in texts if BALANCE_ROW in t and t.startswith(("how much money is left in account 0,",
                                                                  "how much money is left in account 1,"))}
    asked = {t for t, _ in second_calls(llm)}
    assert weak and not weak & asked and len(asked) == summary.second_looks.taken == 2
    # a judge whose answers all verify never needs a second look
    llm = FakeLLM(oracle)
    _, summary = run_traced(ctx_with({0: 0.6, 1: 0.6, 2: 0.6, 3: 0.6}), [], llm, trace_path=tmp_path / "u.jsonl",
                            budget_calls=80)
    assert second_calls(llm) == [] and summary.second_looks.taken == 0 and "no first answer" in summary.second_looks.note
    assert summary.rows_judged == 80


def test_a_claim_that_failed_only_on_its_quote_is_asked_again(tmp_path: Path) -> None:
    # the classifier backs 'balance' weakly (one signal, margin 0.1): no strong suspect, but the claim
    # 'contradicted -> balance' only lacks a real quote ("how much" is stop words only)
    llm = FakeLLM(looks_at_odd_rows("contradicted", quote="how much"))
    found, summary = run_traced(ctx_with({0: 0.1, 1: 0.1, 2: 0.1, 3: 0.1}), [label_issue(sorted(ODD))], llm,
                                trace_path=tmp_path / "t.jsonl", budget_calls=80)
    looks = summary.second_looks
    assert looks.by_reason == {"quote_only": 4} and looks.new_verified == 4
    assert all(f.verified and f.evidence.judge == "second_look" and f.evidence.quote != "how much"
               for f in found if str(f.rows[0]) in ODD)


def test_a_second_look_that_says_supported_leaves_the_first_claim_unverified(tmp_path: Path) -> None:
    def stubborn(prompt: str, v: dict[str, Any], s: type) -> dict[str, Any]:
        if prompt == "judge_second":
            return {"verdict": "supported", "best_label": v["label"], "evidence": v["text"][:20], "reason": "ok",
                    "confidence": "high"}
        return looks_at_odd_rows("contradicted", quote="how much")(prompt, v, s)

    found, summary = run_traced(ctx_with({0: 0.1, 1: 0.1, 2: 0.1, 3: 0.1}), [label_issue(sorted(ODD))],
                                FakeLLM(stubborn), trace_path=tmp_path / "t.jsonl", budget_calls=80)
    odd = [f for f in found if str(f.rows[0]) in ODD]
    assert len(odd) == 4 and not any(f.verified for f in odd)
    assert all(f.evidence.judge == "first" and f.evidence.other_verdict == "supported" for f in odd)
    assert summary.second_looks.outcomes == {"supported": 4} and summary.second_looks.new_verified == 0


def test_second_looks_stay_within_their_share_strongest_first(tmp_path: Path) -> None:
    llm = FakeLLM(looks_at_odd_rows())
    ctx = ctx_with({0: 0.4, 1: 0.5, 2: 0.6, 3: 0.7}, second_look_share=0.05)  # 0.05 x 60 calls = 3
    _, summary = run_traced(ctx, [], llm, trace_path=tmp_path / "t.jsonl", budget_calls=60)
    assert summary.second_looks.cap == 3 and summary.second_looks.taken == 3
    asked = {t for t, _ in second_calls(llm)}
    assert not any(t.startswith("how much money is left in account 0,") for t in asked)  # the weakest waits
    assert llm.n_calls == 60 and summary.rows_judged == 57
    # share 0 turns them off
    llm = FakeLLM(looks_at_odd_rows())
    _, summary = run_traced(ctx_with({2: 0.6}, second_look_share=0), [], llm, trace_path=tmp_path / "u.jsonl",
                            budget_calls=60)
    assert second_calls(llm) == [] and summary.second_looks.cap == 0 and "off" in summary.second_looks.note


def test_a_canary_the_judge_got_wrong_is_never_looked_at_again_nor_a_finding(tmp_path: Path) -> None:
    """A swapped canary called 'supported' looks exactly like a strong suspect (the classifier backs its
    true label); it must get no second look and never become a finding."""
    missed: list[tuple[str, str]] = []

    def misses_one(prompt: str, v: dict[str, Any], s: type) -> dict[str, Any]:
        reply = oracle(prompt, v, s)
        swapped = prompt == "judge" and BALANCE_ROW not in v["text"] and true_label(v["text"]) != v["label"]
        if swapped and (not missed or missed[0] == (v["text"], v["label"])):
            missed.append((v["text"], v["label"]))
            return {**reply, "verdict": "supported", "best_label": v["label"]}
        return reply

    llm = FakeLLM(misses_one)
    found, summary = run_traced(ctx_with({}), [], llm, trace_path=tmp_path / "t.jsonl", budget_calls=80)
    assert missed and summary.calibration is not None and summary.calibration.informative
    assert summary.calibration.swapped_correct == summary.calibration.swapped - 1
    assert missed[0] not in second_calls(llm)
    canary_rows = {e["row_id"] for e in read_trace(tmp_path / "t.jsonl") if e["event"] == "pick"
                   and e["kind"] == "canary"}
    assert not [f for f in found if str(f.rows[0]) in canary_rows and f.evidence.given_label == missed[0][1]]


def test_two_judges_take_no_second_looks(tmp_path: Path) -> None:
    from audit_agent.tasks.judge import second_framing

    ctx = ctx_with({0: 0.6, 1: 0.6, 2: 0.6, 3: 0.6})
    llm = FakeLLM(looks_at_odd_rows())
    _, summary = run_traced(ctx, [], llm, second_framing=second_framing(ctx, 1), trace_path=tmp_path / "t.jsonl",
                            budget_calls=40)
    assert summary.second_looks.taken == 0 and "two judges" in summary.second_looks.note
    assert sum(p == "judge_second" for p, _v, _s in llm.calls) == 20


def test_the_config_default_share() -> None:
    assert AuditConfig().judge.second_look_share == 0.1
    assert np.isclose(AuditConfig.model_validate({"judge": {"second_look_share": 0.2}}).judge.second_look_share, 0.2)


def test_choose_looks_order_and_exclusions() -> None:
    from audit_agent.jobs.judge_canaries import Canary
    from audit_agent.jobs.judge_plan import Pick
    from audit_agent.jobs.judge_records import Answer, Judged
    from audit_agent.jobs.judge_second_look import choose_looks
    from audit_agent.tasks.judge import JudgeVerdict, RowInput
    from audit_agent.verify.judge import RowSignals, Verification

    def judged(rid: str, verdict: str, best: str, failed: list[str], canary: bool = False) -> Judged:
        v = JudgeVerdict(verdict=verdict, best_label=best, evidence="x", reason="r", confidence="high")
        j = Judged(Pick(rid, "refund", "suspect", "test"), RowInput(rid, "t", "t", "refund", False), 1,
                   canary=Canary(rid, "balance", "refund", "swapped") if canary else None)
        quote_found = not failed or not failed[0].startswith("quote")  # verify_verdict lists a quote problem first
        j.answers["first"] = Answer(v, None, Verification(not failed, {"failed_because": failed,
                                                                       "quote_found": quote_found}))
        return j

    margins = {"s1": 0.4, "s2": 0.8, "d1": 0.35, "weak": 0.1, "c": 0.9, "ok": 0.9, "q": 0.0}

    def signal_for(rid: str, best: str, given: str) -> RowSignals:
        m = margins[rid]
        return RowSignals(p_best=0.45 + m / 2 if best == "balance" else 0.45 - m / 2, p_given=0.45 - m / 2,
                          oof_top="balance", p_top=0.45 + m / 2, p_second=0.45 - m / 2)

    rows = [judged("s1", "supported", "refund", []), judged("s2", "supported", "refund", []),
            judged("d1", "ambiguous", "card_lost", ["classifier is confident"]),
            judged("weak", "supported", "refund", []), judged("c", "supported", "refund", [], canary=True),
            judged("ok", "contradicted", "balance", []),
            judged("q", "contradicted", "balance", ["quote has no content word (only stop words)"])]
    looked = judged("s3", "supported", "refund", [])
    looked.second_look = "strong_suspect"
    margins["s3"] = 0.9
    picked = choose_looks([*rows, looked], signal_for, 1, 10)
    assert [(c.row_id, c.reason) for c in picked] == [("q", "quote_only"), ("d1", "strong_suspect"),
                                                     ("s2", "strong_suspect"), ("s1", "strong_suspect")]
    assert picked[1].backed_label == "balance" and picked[2].margin == 0.8
    assert [c.row_id for c in choose_looks(rows, signal_for, 1, 2)] == ["q", "d1"]
    assert choose_looks(rows, signal_for, 2, 10)[1:] == []  # one signal when two are needed: no strong suspect


def test_no_budget_left_after_round_one_is_said_so(tmp_path: Path) -> None:
    llm = FakeLLM(looks_at_odd_rows())
    ctx = ctx_with({0: 0.6, 1: 0.6, 2: 0.6, 3: 0.6}, sample_share=1.0)  # round 1 (sample + canaries) takes all
    _, summary = run_traced(ctx, [], llm, trace_path=tmp_path / "t.jsonl", budget_calls=40)
    assert summary.second_looks.taken == 0 and "no budget was left" in summary.second_looks.note
