"""The agent loop with a fake LLM: the budget plan, canaries, calibration, follow-ups, stop reasons,
trace, failures, findings, two judges."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.findings import Finding, Severity
from audit_agent.jobs.trace import EVENTS
from audit_agent.llm.prompts import render_prompt
from audit_agent.report.trace_file import read_trace
from audit_agent.tasks.judge import PROMPT, second_framing, shared_variables
from tests.fakes import FakeLLM, run_traced

CLASSES = ["balance", "card_lost", "refund"]
TEMPLATES = {"refund": "please refund order {i} I want my money back",
             "card_lost": "my card {i} was lost on the train",
             "balance": "what is the balance on account {i}"}
ODD = {"0", "1", "2", "3"}  # refund rows whose text is really about the balance
KEYWORDS = {"balance": "balance", "card": "card_lost", "refund": "refund"}


def make_ctx(per_label: int = 3, max_rounds: int = 8, followup: int = 4, kind: str = "classification",
             rows_per_label: int = 12, **judge: Any) -> AuditContext:
    ids, texts, labels = [], [], []
    for label in ("refund", "card_lost", "balance"):
        for i in range(rows_per_label):
            rid = str(len(ids))
            ids.append(rid)
            labels.append(label)
            texts.append(f"how much money is left in account {i}, show the balance" if rid in ODD
                         else TEMPLATES[label].format(i=i))
    frame = pd.DataFrame({"id": ids, "text": texts, "label": labels})
    config = AuditConfig.model_validate({"seed": 1, "sample": {"per_label": per_label, "max_rounds": max_rounds,
                                                               "followup_per_cluster": followup}, "judge": judge})
    ctx = AuditContext(train=Dataset(Path("train.csv"), frame, kind=kind), config=config)  # type: ignore[arg-type]
    probs = np.zeros((len(ids), 3))
    for pos, lab in enumerate(labels):
        probs[pos, CLASSES.index(lab)] = 0.8
        probs[pos, [c for c in range(3) if c != CLASSES.index(lab)]] = 0.1
    for pos in (0, 1, 2, 3):  # odd rows: the classifier prefers balance, row 3 most of all
        probs[pos] = [0.6 + 0.1 * (pos == 3), 0.1, 0.3 - 0.1 * (pos == 3)]
    oof = SimpleNamespace(classes=CLASSES, probs=probs, given=np.array([CLASSES.index(x) for x in labels]))
    ctx.__dict__["features"] = SimpleNamespace(oof=oof, neighbors=SimpleNamespace(groups=list))
    return ctx


def true_label(text: str) -> str:
    return next(label for word, label in KEYWORDS.items() if word in text)


def oracle(_prompt: str, v: dict[str, Any], _schema: type) -> dict[str, Any]:
    """Reads the label off the text (the odd refund rows are about the balance); quotes real text."""
    text, label = v["text"], v["label"]
    truth = true_label(text)
    if truth != label:
        return {"verdict": "contradicted", "best_label": truth, "evidence": _quote(text, truth),
                "reason": "other topic", "confidence": "high"}
    return {"verdict": "supported", "best_label": label, "evidence": _quote(text, truth), "reason": "fits",
            "confidence": "high"}


def _quote(text: str, truth: str) -> str:
    word = next(w for w, lab in KEYWORDS.items() if lab == truth)
    start = text.index(word)
    return text[max(0, start - 9):start + len(word)]


def always_supported(_prompt: str, v: dict[str, Any], _schema: type) -> dict[str, Any]:
    return {"verdict": "supported", "best_label": v["label"], "evidence": v["text"][:20], "reason": "fits",
            "confidence": "high"}


def label_issue(rows: list[str], severity: Severity = Severity.HIGH) -> Finding:
    return Finding(check="label_issue", severity=severity, message="suspect labels", rows=rows)


def picks(path: Path) -> list[dict[str, Any]]:
    return [e for e in read_trace(path) if e["event"] == "pick"]


def test_the_budget_decides_how_many_rows_suspects_first(tmp_path: Path) -> None:
    ctx = make_ctx(rows_per_label=40)
    findings = [label_issue(["1"], Severity.MEDIUM), label_issue(["0"]),
                Finding(check="near_duplicate", severity=Severity.LOW, message="dup", rows=["13"]),
                Finding(check="repeated_opening", severity=Severity.HIGH, message="odd style", rows=["30"])]
    llm = FakeLLM(oracle)
    _, summary = run_traced(ctx, findings, llm, trace_path=tmp_path / "t.jsonl", budget_calls=60)
    assert llm.n_calls == summary.rows_judged == 60 and summary.stop_kind == "budget"
    assert summary.canaries_judged == 10 and summary.real_rows_judged == 50
    real = [p for p in picks(tmp_path / "t.jsonl") if p["kind"] != "canary"]
    assert [p["row_id"] for p in real[:2]] == ["0", "1"] and real[0]["kind"] == "suspect"
    assert {p["row_id"] for p in real if p["kind"] == "suspect"} == {"0", "1"}  # a duplicate is no label suspect
    assert summary.error_estimate is not None
    sampled = [e.sampled for e in summary.error_estimate.per_label]
    assert len(sampled) == 3 and max(sampled) - min(sampled) <= 1  # stratified: equal rows per label
    plan = summary.plan
    assert plan.budget_rows == 60 and plan.canaries == 10 and plan.suspects_named == 2
    assert sum(plan.rows_by_kind.values()) == 60


def test_stops_when_candidates_run_out(tmp_path: Path) -> None:
    llm = FakeLLM(oracle)
    _, summary = run_traced(make_ctx(), [label_issue(["0", "1"])], llm, trace_path=tmp_path / "t.jsonl",
                            budget_calls=500)
    assert summary.stop_kind == "candidates" and "every labelled row" in summary.stop_reason
    assert summary.real_rows_judged == 36 and llm.n_calls < 500


def test_stops_when_the_budget_is_spent(tmp_path: Path) -> None:
    llm = FakeLLM(oracle, max_calls=4)
    _, summary = run_traced(make_ctx(), [label_issue(["0", "1"])], llm, trace_path=tmp_path / "t.jsonl")
    assert llm.n_calls == 4 and summary.rows_judged == 4 and summary.calls == 4
    assert summary.stop_reason == "budget exhausted" and summary.stop_kind == "budget"
    events = read_trace(tmp_path / "t.jsonl")
    assert events[-1]["event"] == "stop" and events[-1]["reason"] == "budget exhausted"


def test_canary_prompts_look_like_every_other_row(tmp_path: Path) -> None:
    llm = FakeLLM(oracle)
    run_traced(make_ctx(rows_per_label=40), [label_issue(["0"])], llm, trace_path=tmp_path / "t.jsonl",
               budget_calls=60)
    kinds = [p["kind"] for p in picks(tmp_path / "t.jsonl")]
    assert kinds.count("canary") == 10
    calls = [(kind, v) for kind, (_p, v, _s) in zip(kinds, llm.calls, strict=True)]
    rendered = [(kind, render_prompt(PROMPT, v)) for kind, v in calls]
    assert {tuple(sorted(v)) for _, v in calls} == {("guide", "label", "labels", "more_labels", "text")}
    systems = {msgs[0]["content"] for _, msgs in rendered}
    assert len(systems) == 1  # byte-identical system message for canaries and real rows

    def shape(msgs: list[dict[str, str]], v: dict[str, Any]) -> str:
        return msgs[-1]["content"].replace(v["text"], "<TEXT>").replace(f"Given label: {v['label']}", "<LABEL>")

    shapes = {shape(msgs, v) for (_, msgs), (_, v) in zip(rendered, calls, strict=True)}
    assert shapes == {"<LABEL>\n<row>\n<TEXT>\n</row>"}
    assert all(not re.search(r"canary|calibrat", str(v), re.I) for _, v in calls)
    positions = [i for i, k in enumerate(kinds) if k == "canary"]
    assert positions != list(range(len(positions)))  # shuffled among the real picks, not a block at the start


def test_canary_verdicts_never_become_findings_and_calibrate_the_judge(tmp_path: Path) -> None:
    llm = FakeLLM(oracle)
    found, summary = run_traced(make_ctx(rows_per_label=40), [label_issue(["0", "1", "2"])], llm,
                                trace_path=tmp_path / "t.jsonl", budget_calls=60)
    canaries = [p for p in picks(tmp_path / "t.jsonl") if p["kind"] == "canary"]
    swapped = {p["row_id"]: p["label"] for p in canaries if p["reason"].endswith("(swapped)")}
    cal = summary.calibration
    assert len(swapped) == len(canaries) == 10 and cal is not None  # the sample's confident rows are the confirmed
    assert cal.accuracy == 1.0 and cal.informative is True and cal.swapped_correct == 10
    assert cal.confirmed_canaries == 0 and cal.confirmed_sample > 10
    assert cal.confirmed == cal.confirmed_correct == cal.confirmed_sample + cal.confirmed_followup
    # the oracle called every swapped canary 'contradicted'; none of that is a finding
    assert all(not (str(f.rows[0]) in swapped and f.evidence.given_label == swapped[str(f.rows[0])]) for f in found)
    assert {str(f.rows[0]) for f in found} <= ODD
    assert summary.verdicts["contradicted"] == len(found)  # verdict counts cover real rows only


def test_follows_up_where_claims_cluster_and_verifies_with_the_classifier(tmp_path: Path) -> None:
    ctx = make_ctx(rows_per_label=40, sample_share=0.1)
    found, summary = run_traced(ctx, [label_issue(["0", "1", "2"])], FakeLLM(oracle), trace_path=tmp_path / "t.jsonl",
                                budget_calls=40)
    events = read_trace(tmp_path / "t.jsonl")
    follow = [e for e in events if e["event"] == "pick" and e["kind"] == "followup"]
    assert follow and follow[0]["row_id"] == "3"  # the unjudged refund row most like 'balance'
    decision = next(e for e in events if e["event"] == "followup")
    assert {"refund -> balance", "label refund"} <= {c["key"] for c in decision["clusters"]}
    contradicted = [f for f in found if f.check == "judge_contradicted"]
    assert {str(f.rows[0]) for f in contradicted} == ODD
    assert all(f.verified and f.severity is Severity.HIGH and f.source == "judge" for f in contradicted)
    assert contradicted[0].evidence.verification.backed_by == ["classifier"]
    assert summary.verified == 4 and summary.unverified == 0 and summary.beyond_checks == 1  # row 3


def test_an_uninformative_judge_verifies_nothing_and_stops(tmp_path: Path) -> None:
    def contrarian(_p: str, v: dict[str, Any], _s: type) -> dict[str, Any]:
        other = next(c for c in CLASSES if c != v["label"])
        return {"verdict": "contradicted", "best_label": other, "evidence": v["text"][:20], "reason": "no",
                "confidence": "high"}

    found, summary = run_traced(make_ctx(rows_per_label=40), [label_issue(["0", "1"])], FakeLLM(contrarian),
                                trace_path=tmp_path / "t.jsonl", budget_calls=100)
    cal = summary.calibration
    assert cal is not None and cal.informative is False and cal.accuracy is not None and cal.accuracy <= cal.baseline
    assert summary.stop_kind == "not_informative" and summary.rows_judged < 100
    assert found and not any(f.verified for f in found) and summary.error_estimate is None
    assert all("not informative" in " ".join(f.evidence.verification.failed_because) for f in found)
    assert not [e for e in read_trace(tmp_path / "t.jsonl") if e["event"] == "pick" and e["kind"] == "followup"]
    assert summary.second_looks.taken == 0 and "not informative" in summary.second_looks.note


def test_a_constant_supported_judge_is_not_informative(tmp_path: Path) -> None:
    _, summary = run_traced(make_ctx(rows_per_label=40), [], FakeLLM(always_supported),
                            trace_path=tmp_path / "t.jsonl", budget_calls=100)
    assert summary.calibration is not None and summary.calibration.accuracy == 0.5
    assert summary.calibration.informative is False and summary.stop_kind == "not_informative"


def test_error_rate_is_estimated_on_the_random_sample(tmp_path: Path) -> None:
    _, summary = run_traced(make_ctx(rows_per_label=40), [], FakeLLM(oracle), trace_path=tmp_path / "t.jsonl",
                            budget_calls=500)
    est = summary.error_estimate
    assert est is not None and est.sampled == 120  # every row read with its own label, so all of them sampled
    by = {e.label: e for e in est.per_label}
    assert by["refund"].errors == 4 and by["balance"].errors == 0 and by["card_lost"].errors == 0
    assert by["refund"].rate == round(4 / by["refund"].sampled, 4)


def test_trace_has_every_event_type(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    _, summary = run_traced(make_ctx(rows_per_label=40, sample_share=0.1), [label_issue(["0", "1", "2"])],
                            FakeLLM(oracle), trace_path=path, budget_calls=40)
    events = read_trace(path)
    assert set(EVENTS) <= {e["event"] for e in events}
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all("reason" in e for e in events if e["event"] == "pick")
    assert events[-1]["reason"] == summary.stop_reason


def test_failed_calls_are_counted_and_the_loop_goes_on(tmp_path: Path) -> None:
    llm = FakeLLM(oracle, fail=lambda _p, v: "card" in v["text"] and v["text"].endswith("7 was lost on the train"))
    seen: list[tuple[int, int | None, str]] = []
    _, summary = run_traced(make_ctx(), [], llm, trace_path=tmp_path / "t.jsonl", budget_calls=500,
                            progress=lambda a, t, d: seen.append((a, t, d)))
    calls = [e for e in read_trace(tmp_path / "t.jsonl") if e["event"] == "call"]
    failed = sum(not c["ok"] for c in calls)
    assert failed >= 1 and summary.rows_failed == failed and summary.partial
    assert all(c["error"] for c in calls if not c["ok"])
    assert summary.rows_judged == len(calls) - failed


def test_unsupported_claims_stay_unverified(tmp_path: Path) -> None:
    def invents(_p: str, v: dict[str, Any], s: type) -> dict[str, Any]:
        reply = oracle(_p, v, s)
        if reply["verdict"] == "supported" and "card" in v["text"]:
            return {"verdict": "contradicted", "best_label": "refund", "evidence": "the thief took my wallet",
                    "reason": "made up", "confidence": "high"}
        return reply

    found, summary = run_traced(make_ctx(rows_per_label=40), [], FakeLLM(invents), trace_path=tmp_path / "t.jsonl",
                                budget_calls=60)
    made_up = [f for f in found if f.evidence.quote == "the thief took my wallet"]
    assert made_up and all(not f.verified and f.severity is Severity.LOW for f in made_up)
    assert "unverified" in made_up[0].message
    assert summary.unverified >= len(made_up)


def test_self_contradictory_verdicts_are_counted_not_reported(tmp_path: Path) -> None:
    """'contradicted' naming the given label as best is no claim: no finding, no agreement, no follow-up."""
    def echoes(p: str, v: dict[str, Any], s: type) -> dict[str, Any]:
        reply = oracle(p, v, s)
        if "card" in v["text"] and reply["verdict"] == "supported":
            reply["verdict"] = "contradicted"
        return reply

    findings, summary = run_traced(make_ctx(rows_per_label=40), [], FakeLLM(echoes), trace_path=tmp_path / "t.jsonl",
                                   budget_calls=60)
    card_rows = [e for e in read_trace(tmp_path / "t.jsonl") if e["event"] == "pick" and e["kind"] != "canary"
                 and e["label"] == "card_lost"]
    assert summary.self_contradictory == len(card_rows) > 0
    assert all(f.evidence.given_label != "card_lost" for f in findings)


def test_a_misspelt_best_label_is_read_as_the_real_one_and_kept_as_written(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Label sets too big for an enum get a free-text best_label, which small models misspell."""
    from audit_agent.tasks import judge

    monkeypatch.setattr(judge, "MAX_ENUM_LABELS", 2)
    judge.verdict_schema.cache_clear()

    def hyphens(p: str, v: dict[str, Any], s: type) -> dict[str, Any]:
        reply = oracle(p, v, s)
        return {**reply, "best_label": reply["best_label"].replace("_", "-").upper()}

    try:
        findings, _ = run_traced(make_ctx(rows_per_label=40), [label_issue(["0"])], FakeLLM(hyphens),
                                 trace_path=tmp_path / "t.jsonl", budget_calls=40)
    finally:
        judge.verdict_schema.cache_clear()  # no string-label schema leaks into other tests
    assert findings and all(f.evidence.best_label in CLASSES for f in findings)
    events = read_trace(tmp_path / "t.jsonl")
    snapped = [e.get("best_label_as_written") for e in events if e["event"] == "verification"]
    assert snapped and all(w is not None and w.isupper() for w in snapped)


def test_generation_data_is_skipped(tmp_path: Path) -> None:
    llm = FakeLLM(oracle)
    findings, summary = run_traced(make_ctx(kind="generation"), [], llm, trace_path=tmp_path / "t.jsonl")
    assert findings == [] and llm.n_calls == 0 and summary.stop_reason.startswith("skipped")


def test_a_fatal_model_error_ends_the_trace_and_propagates(tmp_path: Path) -> None:
    from audit_agent.errors import LLMError

    def broken(_prompt: str, _v: dict[str, Any], _s: type) -> dict[str, Any]:
        raise LLMError("model not found")

    path = tmp_path / "t.jsonl"
    with pytest.raises(LLMError):
        run_traced(make_ctx(), [], FakeLLM(broken), trace_path=path)
    last = read_trace(path)[-1]
    assert last["event"] == "stop" and "LLMError" in last["reason"]


def test_two_judges_share_the_budget_and_their_kappa_is_sklearns(tmp_path: Path) -> None:
    def doubter(p: str, v: dict[str, Any], s: type) -> dict[str, Any]:
        reply = oracle(p, v, s)
        return {**reply, "verdict": "ambiguous"} if v["label"] == "balance" else reply

    first, second = FakeLLM(oracle), FakeLLM(doubter)
    _, summary = run_traced(make_ctx(rows_per_label=40), [label_issue(["0"])], first, second=second,
                            trace_path=tmp_path / "t.jsonl", budget_calls=80)
    assert first.n_calls == second.n_calls == 40 and summary.second_model is not None
    events = read_trace(tmp_path / "t.jsonl")
    verdicts: dict[str, dict[str, tuple[str, str, str]]] = {"first": {}, "second": {}}
    last_pick: dict[str, dict[str, Any]] = {}  # a swapped canary's row can be read again with its own label
    for e in events:
        if e["event"] == "pick":
            last_pick[e["row_id"]] = e
        elif e["event"] == "verdict" and last_pick[e["row_id"]]["kind"] != "canary":
            verdicts[e["judge"]][e["row_id"]] = (e["verdict"], e["best_label"], last_pick[e["row_id"]]["label"])

    def answer(v: tuple[str, str, str]) -> str:
        return "ambiguous" if v[0] == "ambiguous" else v[2] if v[0] == "supported" else v[1]

    rows = sorted(verdicts["first"])
    a = [answer(verdicts["first"][r]) for r in rows]
    b = [answer(verdicts["second"][r]) for r in rows]
    ag = summary.agreement
    assert ag is not None and ag.rows == len(rows) and ag.kappa == pytest.approx(cohen_kappa_score(a, b), abs=1e-4)
    assert ag.disagreements_total == sum(x != y for x, y in zip(a, b, strict=True)) > 0
    assert all(d.second_verdict == "ambiguous" for d in ag.disagreements)


def test_the_second_framing_asks_the_same_model_another_way(tmp_path: Path) -> None:
    ctx = make_ctx(rows_per_label=40)
    llm = FakeLLM(oracle)
    framing = second_framing(ctx, 1)
    _, summary = run_traced(ctx, [], llm, second_framing=framing, trace_path=tmp_path / "t.jsonl", budget_calls=40)
    prompts = [p for p, _v, _s in llm.calls]
    assert prompts.count("judge") == prompts.count("judge_second") == 20
    assert summary.agreement is not None and summary.agreement.kappa == 1.0  # the oracle answers alike
    firsts = {tuple(v["labels"]) for p, v, _s in llm.calls if p == "judge"}
    seconds = {tuple(v["labels"]) for p, v, _s in llm.calls if p == "judge_second"}
    assert firsts == {tuple(sorted(CLASSES))} and len(seconds) == 1 and sorted(next(iter(seconds))) == CLASSES
    shared = shared_variables(ctx, framing)
    message = render_prompt("judge_second", {**shared, "text": "my card 3 was lost", "label": "refund"})
    assert message[-1]["content"].startswith("<row>") and "Given label: refund" in message[-1]["content"]


def test_a_rerun_starts_a_fresh_trace(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    for _ in range(2):
        run_traced(make_ctx(), [], FakeLLM(oracle), trace_path=path, budget_calls=20)
    assert sum(e["event"] == "plan" for e in read_trace(path)) == 1


def test_stop_reason_names_the_budget_limit_that_was_hit() -> None:
    from audit_agent.jobs.judge import _budget_reason

    assert _budget_reason("LLM budget: max_tokens=400000 would be exceeded (399000 used)") == \
        "budget exhausted (max_tokens=400000 would be exceeded (399000 used))"
    assert _budget_reason("LLM budget: the judge share of 7 calls is spent") == \
        "budget exhausted (the judge share of 7 calls is spent)"


def test_canaries_on_a_boundary_get_a_second_batch_and_everything_is_reverified(tmp_path: Path) -> None:
    """Right on the first 3 swapped canaries only and on every confident row: 3 of 10 and 17 of 17, balanced
    accuracy 0.65 with a lower bound of 0.52 (informative, under `strong_canary_low` 0.55) is a boundary, so
    10 more canaries come (9 swapped, one confirmed: the kinds are evened out), and 3 of 19 against 28 of 28
    (lower bound 0.4997) makes the judge not informative: every answer is verified again."""
    caught = []

    def tires(p: str, v: dict[str, Any], s: type) -> dict[str, Any]:
        reply = oracle(p, v, s)
        if reply["verdict"] == "contradicted" and "show the balance" not in v["text"]:  # a swapped canary
            caught.append(v["text"])
            if len(caught) > 3:
                return always_supported(p, v, s)
        return reply

    _, summary = run_traced(make_ctx(rows_per_label=40), [], FakeLLM(tires), trace_path=tmp_path / "t.jsonl",
                            budget_calls=80)
    events = read_trace(tmp_path / "t.jsonl")
    calibrations = [e for e in events if e["event"] == "calibration"]
    assert [(c["swapped"], c["swapped_correct"], c["confirmed"], c["confirmed_correct"], c["low"], c["informative"])
            for c in calibrations] == [(10, 3, 17, 17, 0.5168, True), (19, 3, 28, 28, 0.4997, False)]
    assert summary.canaries_judged == 20 and summary.calibration is not None
    assert summary.calibration.canaries == 20 and summary.calibration.confirmed_canaries == 1
    assert summary.calibration.informative is False and summary.stop_kind == "not_informative"
    second = calibrations[1]["round"]
    reverified = {e["row_id"] for e in events if e["event"] == "verification" and e["round"] == second}
    first_round = {e["row_id"] for e in events if e["event"] == "pick" and e["round"] == 1 and e["kind"] != "canary"}
    assert first_round <= reverified  # round 1's answers verified again with the new calibration


def test_confident_rows_the_judge_reads_anyway_are_confirmed_cases_and_stay_findings(tmp_path: Path) -> None:
    """A confident sample row the judge calls 'contradicted' counts against it in the calibration (it
    should have said supported) and is reported like any other row: a finding, unverified here (no
    model-free signal backs the label it names). Rows with a label-suspect finding never count."""
    wrong: list[str] = []

    def slips_once(p: str, v: dict[str, Any], s: type) -> dict[str, Any]:
        reply = oracle(p, v, s)
        if not wrong and v["label"] == "card_lost" and true_label(v["text"]) == "card_lost":
            wrong.append(v["text"])
            return {**reply, "verdict": "contradicted", "best_label": "refund"}
        return reply

    ctx = make_ctx(rows_per_label=40)
    named = [str(i) for i in range(40, 80)]  # every card_lost row: label suspects, never confirmed cases
    found, summary = run_traced(ctx, [label_issue(["0"]), label_issue(named, Severity.LOW)], FakeLLM(oracle),
                                trace_path=tmp_path / "u.jsonl", budget_calls=60)
    cal = summary.calibration
    assert cal is not None and cal.confirmed_sample > 0
    counted = [e for e in read_trace(tmp_path / "u.jsonl") if e["event"] == "calibration"][-1]["confirmed_rows"]
    assert not set(counted) & set(named) and "0" not in counted
    found, summary = run_traced(ctx, [], FakeLLM(slips_once), trace_path=tmp_path / "t.jsonl", budget_calls=60)
    events = read_trace(tmp_path / "t.jsonl")
    row = next(e["row_id"] for e in events if e["event"] == "verdict" and e["verdict"] == "contradicted"
               and e["best_label"] == "refund")
    counted = [e for e in events if e["event"] == "calibration"][-1]["confirmed_rows"]
    cal = summary.calibration
    assert cal is not None and row in counted and cal.confirmed == len(counted) and cal.confirmed_canaries == 0
    assert cal.confirmed_correct == cal.confirmed - 1 and cal.swapped_correct == cal.swapped
    assert cal.accuracy == round((1 + (cal.confirmed - 1) / cal.confirmed) / 2, 4) and cal.informative
    finding = next(f for f in found if str(f.rows[0]) == row)
    assert finding.check == "judge_contradicted" and not finding.verified
