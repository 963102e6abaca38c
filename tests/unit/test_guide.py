"""Guide rewrite: every verification rule alone, then the job end to end with the fake LLM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import BaseModel, ValidationError

from audit_agent.checks.conflicts import ConflictGroup
from audit_agent.checks.label_issues import OverlapEvidence
from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.findings import Finding, Severity
from audit_agent.jobs.guide import GuideResult, run_guide
from audit_agent.jobs.guide_select import colliding_pairs, old_definitions, pick_examples, relabel_candidates
from audit_agent.report.guide_outputs import write_guide_outputs
from audit_agent.tasks.guide import LabelSection, LabelText, PairRule, PairSection, pair_schema
from audit_agent.verify.guide import (
    check_examples,
    check_label_text,
    check_pair_rule,
    extra_labels,
    invented_labels,
    missing_labels,
    missing_pairs,
)
from tests.fakes import FakeLLM, evidence

LABELS = ["card_arrival", "charge_dispute", "refund_request"]
CONFLICT = "refund the wrong charge"


def make_frame() -> pd.DataFrame:
    rows = []
    for i in range(20):
        rows.append((f"I want my money back for order {i}, please refund it.", "refund_request"))
        rows.append((f"Why was I charged twice on {i} March? This charge is wrong.", "charge_dispute"))
        rows.append((f"Where is my card {i}? It has not arrived yet.", "card_arrival"))
    rows += [(CONFLICT, "refund_request"), (CONFLICT, "charge_dispute")]
    frame = pd.DataFrame(rows, columns=["text", "label"])
    frame.insert(0, "id", [str(i) for i in range(len(frame))])
    return frame


@pytest.fixture()
def ctx() -> AuditContext:
    return AuditContext(train=Dataset(path=Path("data.csv"), frame=make_frame()), config=AuditConfig())


@pytest.fixture()
def findings() -> list[Finding]:
    return [Finding(check="conflicting_labels", severity=Severity.HIGH, message="same text, two labels",
                    rows=["60", "61"], labels=["charge_dispute", "refund_request"],
                    evidence=evidence(ConflictGroup, label_pairs=[["charge_dispute", "refund_request"]]))]


def good_responder(_p: str, v: dict[str, Any], _s: type[BaseModel]) -> dict[str, Any]:
    if v.get("pair"):
        return {"winner": "refund_request", "when": "when a message asks for money back and complains about a charge"}
    return {"definition": f"The customer writes about {v['label'].replace('_', ' ')}.",
            "not_this": "Questions about other parts of the account."}


# ---------------------------------------------------------------- rules


def test_invented_labels_flags_unknown_label_like_names_only() -> None:
    assert invented_labels("use `refund_request` or card_arrival", LABELS) == []
    assert invented_labels("use `money_back` here", LABELS) == ["money_back"]
    assert invented_labels("see account_closure first", LABELS) == ["account_closure"]


@pytest.mark.parametrize(("definition", "not_this", "problem"), [
    ("", "Questions about other parts of the account.", "definition is empty"),
    ("x " * 110, "Questions about other parts of the account.", "definition is"),
    ("The customer asks about {refund}.", "Questions about other parts.", "markup"),
    ("The customer asks for `money_back` in general.", "Questions about other parts.", "do not exist"),
    ("The customer asks for a refund.", "The customer asks for a refund.", "repeats the definition"),
    ("refund request", "Questions about other parts of the account.", "definition"),
])
def test_check_label_text_rejects_bad_fields(definition: str, not_this: str, problem: str) -> None:
    problems = check_label_text("refund_request", LabelText(definition=definition, not_this=not_this), LABELS)
    assert any(problem in p for p in problems), problems


def test_check_label_text_accepts_plain_sentences() -> None:
    reply = LabelText(definition="The customer asks to get money back for a purchase.",
                      not_this="A complaint about a charge without asking for the money back.")
    assert check_label_text("refund_request", reply, LABELS) == []


def test_check_pair_rule() -> None:
    good = PairRule(winner="refund_request", when="when a message asks for money back and disputes a charge")
    assert check_pair_rule("charge_dispute", "refund_request", good, LABELS) == []
    outside = PairRule(winner="card_arrival", when="when a message asks for money back and disputes a charge")
    assert any("not one of" in p for p in check_pair_rule("charge_dispute", "refund_request", outside, LABELS))
    empty = PairRule(winner="refund_request", when="when a message")
    assert check_pair_rule("charge_dispute", "refund_request", empty, LABELS)
    invented = PairRule(winner="refund_request", when="when a message is really a `billing_issue` case")
    assert any("do not exist" in p for p in check_pair_rule("charge_dispute", "refund_request", invented, LABELS))


def test_pair_schema_only_allows_the_pair() -> None:
    schema = pair_schema("charge_dispute", "refund_request")
    assert schema.model_validate({"winner": "refund_request", "when": "when x y z"}).winner == "refund_request"
    with pytest.raises(ValidationError):
        schema.model_validate({"winner": "card_arrival", "when": "when x y z"})


def test_check_examples_verbatim_and_label() -> None:
    frame = make_frame()
    assert check_examples("card_arrival", ["Where is my card 3? It has not arrived yet."], frame) == []
    assert "not found verbatim" in check_examples("card_arrival", ["Where is my card 3?"], frame)[0]
    assert "does not carry" in check_examples("refund_request", ["Where is my card 3? It has not arrived yet."],
                                              frame)[0]
    assert "also occurs" in check_examples("refund_request", [CONFLICT], frame)[0]


def test_coverage_and_pair_rules() -> None:
    sections = {lab: LabelSection(label=lab, definition="d", not_this="n") for lab in LABELS[:2]}
    sections["made_up"] = LabelSection(label="made_up", definition="d", not_this="n")
    assert missing_labels(sections, LABELS) == ["refund_request"]
    assert extra_labels(sections, LABELS) == ["made_up"]
    rules = {("charge_dispute", "refund_request"): PairSection(label_a="charge_dispute", label_b="refund_request",
                                                               winner="refund_request", when="when a b c")}
    pairs = [("refund_request", "charge_dispute"), ("card_arrival", "charge_dispute")]
    assert missing_pairs(rules, pairs) == [("card_arrival", "charge_dispute")]


def test_colliding_pairs_reads_evidence_shapes_and_drops_unknown_labels() -> None:
    fs = [
        Finding(check="conflicting_labels", severity=Severity.MEDIUM, message="a",
                evidence=evidence(ConflictGroup, label_pairs=[["card_arrival", "charge_dispute"],
                                                              ["x_unknown", "card_arrival"]])),
        Finding(check="label_overlap", severity=Severity.MEDIUM, message="b",
                evidence=evidence(OverlapEvidence, label_a="refund_request", label_b="charge_dispute")),
        Finding(check="conflicting_labels", severity=Severity.HIGH, message="c",
                evidence=evidence(ConflictGroup, label_pairs=[["refund_request", "charge_dispute"]])),
        Finding(check="class_balance", severity=Severity.LOW, message="d", labels=["card_arrival", "refund_request"]),
    ]
    pairs = colliding_pairs(fs, LABELS)
    assert set(pairs) == {("card_arrival", "charge_dispute"), ("charge_dispute", "refund_request")}
    assert pairs[("charge_dispute", "refund_request")] == ["label_overlap", "conflicting_labels"]
    assert pairs[("card_arrival", "charge_dispute")] == ["conflicting_labels"]


def test_old_definitions_markdown_and_yaml() -> None:
    md = "# Guide\n\n## refund_request\nAsks for money back.\n\n## Card arrival\nCard not there yet.\n## Other\nx"
    assert old_definitions(md, LABELS) == {"refund_request": "Asks for money back.",
                                          "card_arrival": "Card not there yet."}
    yml = "labels:\n  refund_request: Asks for money back.\n  charge_dispute:\n    definition: Wrong charge.\n"
    found = old_definitions(yml, LABELS)
    assert found["refund_request"] == "Asks for money back."
    assert "Wrong charge." in found["charge_dispute"]


def test_pick_examples_are_verbatim_carry_the_label_and_skip_conflicts(ctx: AuditContext) -> None:
    frame = ctx.train.frame
    for label in LABELS:
        texts, ids = pick_examples(frame, None, label, exclude=set())
        assert len(texts) == 2 and len(ids) == 2
        assert check_examples(label, texts, frame) == []
        assert CONFLICT not in texts


def test_relabel_candidates_follow_the_rule_direction(ctx: AuditContext) -> None:
    frame = ctx.train.frame
    rule = PairSection(label_a="charge_dispute", label_b="refund_request", winner="refund_request",
                       when="when a message asks for money back and disputes a charge")
    out = relabel_candidates(frame, None, {rule.key: rule})
    assert out["id"].tolist() == ["61"]  # the conflicting row with the losing label
    assert out["proposed_label"].tolist() == ["refund_request"] and out["reason"].str.len().min() > 10
    unverified = rule.model_copy(update={"status": "needs review"})
    assert relabel_candidates(frame, None, {rule.key: unverified}).empty


# ---------------------------------------------------------------- the job


class Written:
    """A guide result with the paths its files were written to (as the CLI writes them)."""

    def __init__(self, result: GuideResult, out: Path) -> None:
        self.result = result
        paths = write_guide_outputs(out, result)
        self.guide_path, self.diff_path = paths["guide"], paths["diff"]
        self.relabel_path, self.checks_path = paths["relabel"], paths["checks"]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.result, name)


def run_written(ctx: AuditContext, findings: list[Finding], llm: Any, out: Path, old: Path | None) -> Written:
    if old is not None:
        ctx = AuditContext(train=ctx.train, config=ctx.config, guide_text=old.read_text())
    return Written(run_guide(ctx, findings, llm, old_guide_name=old.name if old else None), out)


def test_run_guide_writes_verified_guide(ctx: AuditContext, findings: list[Finding], tmp_path: Path) -> None:
    llm = FakeLLM(good_responder)
    result = run_written(ctx, findings, llm, tmp_path, None)
    guide = result.guide_path.read_text()
    assert result.status_counts == {"verified": 4, "repaired": 0, "needs review": 0}
    assert result.failed_checks == []
    assert llm.n_calls == 4  # 3 labels + 1 pair
    for label in LABELS:
        assert f"### `{label}`" in guide
    assert "label `refund_request`." in guide and "[needs review]" not in guide
    assert "Rows that need mind reading" in guide and "apply tie-break rule" in guide
    relabel = pd.read_csv(result.relabel_path, dtype=str)
    assert "61" in relabel["id"].tolist() and set(relabel["proposed_label"]) == {"refund_request"}
    assert result.diff_path.read_text().startswith("--- labels_only")
    checks = pd.read_csv(result.checks_path)
    assert checks["passed"].all() and len(checks) >= 5 + 2 * len(LABELS) + 1


def test_run_guide_repairs_once(ctx: AuditContext, findings: list[Finding], tmp_path: Path) -> None:
    bad = {"definition": "It is a `money_back_case` message.", "not_this": "Other things entirely here."}

    def responder(prompt: str, v: dict[str, Any], s: type[BaseModel]) -> dict[str, Any]:
        if prompt == "guide" and v.get("label") == "refund_request":
            return bad
        return good_responder(prompt, v, s)

    llm = FakeLLM(responder)
    result = run_written(ctx, findings, llm, tmp_path, None)
    assert result.status_counts["repaired"] == 1 and result.status_counts["needs review"] == 0
    repair_calls = [c for c in llm.calls if c[0] == "guide_repair"]
    assert len(repair_calls) == 1 and "money_back_case" in repair_calls[0][1]["problems"]
    assert "money_back_case" not in result.guide_path.read_text()


def test_run_guide_falls_back_to_marked_template(ctx: AuditContext, findings: list[Finding],
                                                 tmp_path: Path) -> None:
    llm = FakeLLM(good_responder, fail=lambda _p, _v: True)
    old = tmp_path / "old.md"
    old.write_text("## refund_request\nAsks for money back.\n")
    result = run_written(ctx, findings, llm, tmp_path / "out", old)
    guide = result.guide_path.read_text()
    assert result.status_counts["needs review"] == 4
    assert guide.count("[needs review]") >= 4 and "Asks for money back." in guide
    assert {c.item for c in result.failed_checks} >= {f"label:{lab}" for lab in LABELS}
    assert pd.read_csv(result.relabel_path).empty  # no verified rule, so no relabelling
    assert "--- old_guide" in result.diff_path.read_text()
    for label in LABELS:  # examples are still verbatim and labelled
        assert f"### `{label}`" in guide


def test_ambiguous_rows_take_verified_judge_verdicts_and_conflicts() -> None:
    from audit_agent.jobs.guide_select import ambiguous_row_ids

    fs = [
        Finding(check="judge_ambiguous", severity=Severity.MEDIUM, message="a", rows=["5"], source="judge",
                ),
        Finding(check="judge_ambiguous", severity=Severity.LOW, message="b", rows=["6"], source="judge",
                verified=False),
        Finding(check="judge_contradicted", severity=Severity.HIGH, message="c", rows=["7"], source="judge"),
        Finding(check="conflicting_labels", severity=Severity.HIGH, message="d", rows=["8", "9"]),
    ]
    assert ambiguous_row_ids(fs) == {"5": "judge_ambiguous", "8": "conflicting_labels", "9": "conflicting_labels"}


def test_weak_model_failure_modes_are_caught() -> None:
    """What SmolLM2-135M actually wrote in the measured run: instruction echoes, the prompt's example
    rule copied onto an unrelated pair, prose about nothing in the label."""
    from audit_agent.verify.guide import context_words

    vocab = context_words("age_limit", "Hello, Can my children get an account?")
    echo = LabelText(definition="one sentence, what messages get", not_this="at most 200 characters")
    problems = check_label_text("age_limit", echo, ["age_limit", "apple_pay"], vocab)
    assert any("instructions" in p for p in problems)
    unrelated = LabelText(definition="The bank sends a new statement every month.",
                          not_this="Messages about card payments abroad.")
    assert any("mentions nothing" in p for p in check_label_text("age_limit", unrelated, ["age_limit"], vocab))
    fine = LabelText(definition="Asks whether children can open an account or what age is required.",
                     not_this="Questions about card payments abroad.")
    assert check_label_text("age_limit", fine, ["age_limit"], vocab) == []
    pair_vocab = context_words("age_limit", "apple_pay", "Can my children get an account?", "How do I setup apple pay?")
    from audit_agent.tasks.guide import EXAMPLE_WHEN, LABEL_SHOT

    copied = PairRule(winner="apple_pay", when=EXAMPLE_WHEN)
    problems = check_pair_rule("age_limit", "apple_pay", copied, ["age_limit", "apple_pay"], pair_vocab)
    assert any("copies the prompt's example" in p for p in problems)
    assert any("mentions nothing" in p for p in problems)
    shot = LabelText(definition=LABEL_SHOT["definition"], not_this=LABEL_SHOT["not_this"])
    assert any("worked example" in p for p in check_label_text("age_limit", shot, ["age_limit"], vocab))
    ok = PairRule(winner="age_limit", when="when a message asks if a child can use apple pay")
    assert check_pair_rule("age_limit", "apple_pay", ok, ["age_limit", "apple_pay"], pair_vocab) == []
