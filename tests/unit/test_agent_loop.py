"""The agent loop with a fake LLM: sampling, budget, follow-ups, trace, failures, findings."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from audit_agent.config import AuditConfig
from audit_agent.dataset import AuditContext, Dataset
from audit_agent.findings import Finding, Severity
from audit_agent.jobs.trace import EVENTS
from audit_agent.report.trace_file import read_trace
from tests.fakes import FakeLLM, run_traced

CLASSES = ["balance", "card_lost", "refund"]
TEMPLATES = {"refund": "please refund order {i} I want my money back",
             "card_lost": "my card {i} was lost on the train",
             "balance": "what is the balance on account {i}"}
ODD = {"0", "1", "2", "3"}  # refund rows whose text is really about the balance


def make_ctx(per_label: int = 3, control_share: float = 0.2, max_rounds: int = 3, followup: int = 4,
             kind: str = "classification") -> AuditContext:
    ids, texts, labels = [], [], []
    for label in ("refund", "card_lost", "balance"):
        for i in range(12):
            rid = str(len(ids))
            ids.append(rid)
            labels.append(label)
            texts.append(f"how much money is left in account {i}, show the balance" if rid in ODD
                         else TEMPLATES[label].format(i=i))
    frame = pd.DataFrame({"id": ids, "text": texts, "label": labels})
    config = AuditConfig.model_validate({"seed": 1, "sample": {
        "per_label": per_label, "control_share": control_share, "max_rounds": max_rounds,
        "followup_per_cluster": followup}})
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


def judge_like_a_human(_prompt: str, v: dict[str, Any], _schema: type) -> dict[str, Any]:
    """Contradicted (balance) for the odd refund rows, supported otherwise; quotes real text."""
    text, label = v["text"], v["label"]
    if "balance" in text and label == "refund":
        return {"verdict": "contradicted", "best_label": "balance", "evidence": "show the balance",
                "reason": "asks for balance", "confidence": "high"}
    return {"verdict": "supported", "best_label": label, "evidence": text[:20], "reason": "fits",
            "confidence": "high"}


def label_issue(rows: list[str], severity: Severity = Severity.HIGH) -> Finding:
    return Finding(check="label_issue", severity=severity, message="suspect labels", rows=rows)


def test_suspects_first_and_stratified(tmp_path: Path) -> None:
    ctx = make_ctx(max_rounds=1)
    findings = [label_issue(["0", "1"]),
                Finding(check="near_duplicate", severity=Severity.LOW, message="dup", rows=["13"]),
                Finding(check="repeated_opening", severity=Severity.HIGH, message="odd style", rows=["30"])]
    llm = FakeLLM(judge_like_a_human)
    _, summary = run_traced(ctx, findings, llm, trace_path=tmp_path / "t.jsonl")
    picks = [e for e in read_trace(tmp_path / "t.jsonl") if e["event"] == "pick"]
    assert picks[0]["kind"] == "suspect" and picks[0]["row_id"] in {"0", "1"}
    assert {p["row_id"] for p in picks if p["kind"] == "suspect"} == {"0", "1", "13"}
    per_label = pd.Series([p["label"] for p in picks]).value_counts()
    assert per_label.to_dict() == {"refund": 3, "card_lost": 3, "balance": 3}
    assert sum(p["kind"] == "control" for p in picks) >= 2
    assert summary.rows_judged == 9 and summary.stop_reason == "max rounds reached"


def test_stops_when_the_budget_is_spent(tmp_path: Path) -> None:
    llm = FakeLLM(judge_like_a_human, max_calls=4)
    _, summary = run_traced(make_ctx(), [label_issue(["0", "1"])], llm, trace_path=tmp_path / "t.jsonl")
    assert llm.n_calls == 4 and summary.rows_judged == 4 and summary.calls == 4
    assert summary.stop_reason == "budget exhausted"
    events = read_trace(tmp_path / "t.jsonl")
    assert events[-1]["event"] == "stop" and events[-1]["reason"] == "budget exhausted"


def test_follows_up_on_a_cluster_and_reports_verified_findings(tmp_path: Path) -> None:
    ctx = make_ctx(control_share=0.0)
    llm = FakeLLM(judge_like_a_human)
    findings, summary = run_traced(ctx, [label_issue(["0", "1", "2"])], llm, trace_path=tmp_path / "t.jsonl")
    events = read_trace(tmp_path / "t.jsonl")
    follow = [e for e in events if e["event"] == "pick" and e["kind"] == "followup"]
    assert follow and follow[0]["row_id"] == "3"  # the unjudged refund row most like 'balance'
    assert all(e["label"] == "refund" for e in follow)
    decision = next(e for e in events if e["event"] == "followup")
    assert decision["clusters"][0]["key"] == "refund -> balance"
    assert summary.rounds == 2 and summary.stop_reason == "no new clusters"
    contradicted = [f for f in findings if f.check == "judge_contradicted"]
    assert {f.rows[0] for f in contradicted} == ODD
    assert all(f.verified and f.severity is Severity.HIGH and f.source == "judge" for f in contradicted)
    assert contradicted[0].evidence["verification"]["oof_agrees"] is True
    assert summary.verdicts["contradicted"] == 4 and summary.verified == 4 and summary.unverified == 0
    assert summary.agreement_with_checks == 1.0


def test_trace_has_every_event_type(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    _, summary = run_traced(make_ctx(), [label_issue(["0", "1", "2"])], FakeLLM(judge_like_a_human),
                           trace_path=path)
    events = read_trace(path)
    assert set(EVENTS) <= {e["event"] for e in events}
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all("reason" in e for e in events if e["event"] == "pick")
    assert events[-1]["reason"] == summary.stop_reason


def test_failed_calls_are_counted_and_the_loop_goes_on(tmp_path: Path) -> None:
    llm = FakeLLM(judge_like_a_human, fail=lambda _p, v: "card" in v["text"])
    seen: list[tuple[int, int | None, str]] = []
    _, summary = run_traced(make_ctx(max_rounds=1), [], llm, trace_path=tmp_path / "t.jsonl",
                           progress=lambda a, t, d: seen.append((a, t, d)))
    assert summary.rows_failed == 3 and summary.rows_judged == 6
    calls = [e for e in read_trace(tmp_path / "t.jsonl") if e["event"] == "call"]
    assert sum(not c["ok"] for c in calls) == 3 and all(c["error"] for c in calls if not c["ok"])
    assert sum(a for a, _, _ in seen) == 9 and seen[0][1] == 9


def test_unsupported_claims_stay_unverified(tmp_path: Path) -> None:
    def invents(_p: str, v: dict[str, Any], _s: type) -> dict[str, Any]:
        return {"verdict": "contradicted", "best_label": "card_lost", "evidence": "the thief took my wallet",
                "reason": "made up", "confidence": "high"}

    findings, summary = run_traced(make_ctx(max_rounds=1, control_share=1.0), [], FakeLLM(invents),
                                  trace_path=tmp_path / "t.jsonl")
    assert findings and all(not f.verified and f.severity is Severity.LOW for f in findings)
    assert "unverified" in findings[0].message
    assert summary.unverified == len(findings) and summary.verified == 0
    assert summary.agreement_with_checks == 0.0  # random control rows called contradicted


def test_self_contradictory_verdicts_are_counted_not_reported(tmp_path: Path) -> None:
    """'contradicted' naming the given label as best is no claim: no finding, no agreement, no follow-up;
    'ambiguous' naming the given label is a claim, worded without a second label."""
    def echoes(_p: str, v: dict[str, Any], _s: type) -> dict[str, Any]:
        verdict = "ambiguous" if v["label"] == "balance" else "contradicted"
        return {"verdict": verdict, "best_label": v["label"], "evidence": v["text"][:15],
                "reason": "echo", "confidence": "low"}

    ctx = make_ctx(max_rounds=2)
    findings, summary = run_traced(ctx, [label_issue(["0", "1"])], FakeLLM(echoes), trace_path=tmp_path / "t.jsonl")
    contradicted = summary.verdicts["contradicted"]
    assert contradicted == 6 and summary.self_contradictory == contradicted
    assert {f.check for f in findings} == {"judge_ambiguous"}
    assert len(findings) == summary.verdicts["ambiguous"] == 3
    assert all("(no other label named)" in f.message and "also fits" not in f.message for f in findings)
    assert summary.agreement_with_checks is not None and summary.agreement_with_checks < 0.5
    stop = next(e for e in read_trace(tmp_path / "t.jsonl") if e["event"] == "stop")
    assert stop["self_contradictory"] == 6 and stop["agreement"]["suspect_agree"] == 0.0


def test_a_misspelt_best_label_is_read_as_the_real_one_and_kept_as_written(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Label sets too big for an enum get a free-text best_label, which small models misspell."""
    from audit_agent.tasks import judge

    monkeypatch.setattr(judge, "MAX_ENUM_LABELS", 2)
    judge.verdict_schema.cache_clear()

    def hyphens(_p: str, v: dict[str, Any], _s: type) -> dict[str, Any]:
        return {"verdict": "contradicted", "best_label": v["label"].replace("_", "-").upper(),
                "evidence": v["text"][:12], "reason": "echo", "confidence": "low"}

    def invents(_p: str, v: dict[str, Any], _s: type) -> dict[str, Any]:
        return {"verdict": "ambiguous" if v["label"] == "refund" else "contradicted", "best_label": "loan", "evidence": v["text"][:12], "reason": "r",
                "confidence": "low"}

    try:
        findings, summary = run_traced(make_ctx(max_rounds=1), [], FakeLLM(hyphens), trace_path=tmp_path / "t.jsonl")
        invented, _ = run_traced(make_ctx(max_rounds=1), [], FakeLLM(invents), trace_path=tmp_path / "u.jsonl")
    finally:
        judge.verdict_schema.cache_clear()  # no string-label schema leaks into other tests
    assert {f.check for f in invented} == {"judge_ambiguous", "judge_contradicted"}
    for f in invented:
        assert "loan" not in f.labels
        assert f.check == "judge_ambiguous" or not f.verified  # ambiguity can be verified without a label
        assert ("(it named 'loan', which is not a label)" if f.check == "judge_ambiguous"
                else "reads as 'loan' (not a label)") in f.message
    # 'CARD-LOST' for a card_lost row is the given label: self-contradictory, not a claim about another label
    assert findings == [] and summary.self_contradictory == summary.rows_judged > 0
    events = read_trace(tmp_path / "t.jsonl")
    written = [e["best_label"] for e in events if e["event"] == "verdict"]
    snapped = [e.get("best_label_as_written") for e in events if e["event"] == "verification"]
    assert written == snapped and all(w.isupper() for w in written)  # each reply was respelt, and recorded


def test_generation_data_is_skipped(tmp_path: Path) -> None:
    llm = FakeLLM(judge_like_a_human)
    findings, summary = run_traced(make_ctx(kind="generation"), [], llm, trace_path=tmp_path / "t.jsonl")
    assert findings == [] and llm.n_calls == 0 and summary.stop_reason.startswith("skipped")


def test_a_fatal_model_error_ends_the_trace_and_propagates(tmp_path: Path) -> None:
    from audit_agent.errors import LLMError

    def broken(_p: str, _v: dict[str, Any], _s: type) -> dict[str, Any]:
        raise LLMError("model not found")

    path = tmp_path / "t.jsonl"
    with pytest.raises(LLMError):
        run_traced(make_ctx(), [], FakeLLM(broken), trace_path=path)
    last = read_trace(path)[-1]
    assert last["event"] == "stop" and "LLMError" in last["reason"]


def test_sampler_ignores_unknown_rows_other_splits_and_unrelated_checks() -> None:
    from audit_agent.jobs.judge_plan import LabelIndex, plan_first_round, suspects_from_findings

    ctx = make_ctx()
    index = LabelIndex(ctx.train.ids, ctx.train.labels, seed=0)
    findings = [label_issue(["5", "no-such-row"]),
                Finding(check="label_issue", severity=Severity.HIGH, message="eval", rows=["6"], split="eval"),
                Finding(check="repeated_opening", severity=Severity.HIGH, message="style", rows=["7"])]
    suspects = suspects_from_findings(findings, index.id_pos)
    assert set(suspects) == {"5"}
    picks = plan_first_round(index, suspects, ctx.config.sample)
    assert picks[0].row_id == "5" and len({p.row_id for p in picks}) == len(picks) == 9


def test_a_rerun_starts_a_fresh_trace(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    for _ in range(2):
        run_traced(make_ctx(max_rounds=1), [], FakeLLM(judge_like_a_human), trace_path=path)
    assert sum(e["event"] == "plan" for e in read_trace(path)) == 1


def test_stop_reason_names_the_budget_limit_that_was_hit() -> None:
    from audit_agent.jobs.judge import _budget_reason

    assert _budget_reason("LLM budget: max_tokens=400000 would be exceeded (399000 used)") == \
        "budget exhausted (max_tokens=400000 would be exceeded (399000 used))"
    assert _budget_reason("LLM budget: the judge share of 7 calls is spent") == \
        "budget exhausted (the judge share of 7 calls is spent)"
    assert _budget_reason(True) == "budget exhausted"
