"""`audit-agent stress` without a network: the messy variant kinds, the keeps-its-label verification,
scoring a Python callable per variant kind, the outputs, and bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audit_agent import stress_api
from audit_agent.cli import app
from audit_agent.errors import ConfigError, InputError
from audit_agent.features.classifier import TextClassifier
from audit_agent.features.style import style_frame
from audit_agent.io.loader import load_dataset
from audit_agent.jobs.stress import TRAIT_COLUMNS, make_variants, verify_variants
from audit_agent.jobs.stress_result import StressResult, Variant
from audit_agent.tasks.stress_variants import STRESS_KINDS, stress_variant, very_short

SUPPORT = Path(__file__).resolve().parents[2] / "fixtures" / "support"
runner = CliRunner()
TEXTS = ["Hello, could you please tell me where my new card is? Thanks!",
         "How do I reset my password for the mobile app?",
         "I would like to cancel my subscription before the next renewal.",
         "What is the fee for an international transfer?"]
OTHER = "My order arrived broken and the screen is cracked."


@pytest.mark.parametrize("kind", STRESS_KINDS)
def test_each_variant_kind_changes_the_text_and_shows_its_trait(kind: str) -> None:
    for i, text in enumerate(TEXTS):
        variant = stress_variant(kind, text, seed=i, other=OTHER)
        assert variant != text
        assert variant == stress_variant(kind, text, seed=i, other=OTHER), "not deterministic"
        assert bool(style_frame([variant])[TRAIT_COLUMNS[kind]].iloc[0]), (kind, text, variant)


def test_mixed_intent_borrows_the_other_rows_phrase_and_indirect_drops_the_question() -> None:
    mixed = stress_variant("mixed_intent", TEXTS[0], seed=1, other=OTHER)
    assert mixed.startswith(TEXTS[0]) and mixed.rstrip("?").endswith(very_short(OTHER, 3).lower())
    assert stress_variant("indirect", "Where is my new card?", seed=0) == "no idea where my new card is"
    assert stress_variant("no_punctuation", "I can't log in, code #123 expired!", seed=0) == \
        "I cant log in code 123 expired"
    with pytest.raises(ValueError, match="unknown variant kind"):
        stress_variant("shouting", "text", seed=0)


TRAIN = {
    "card_arrival": ["my new card has not arrived yet", "still waiting for my card to arrive",
                     "when will my card be delivered", "the card you sent never arrived",
                     "card not here after two weeks", "how long does card delivery take"],
    "refund": ["i want a refund for my order", "please give me my money back", "refund the wrong item",
               "how do i get a refund", "money back for the broken item", "return the item and refund me"],
    "password": ["i forgot my password", "reset my password please", "password reset link does not work",
                 "cannot log in, password wrong", "change my login password", "my password expired"],
}


def small_checker() -> TextClassifier:
    texts = [t for rows in TRAIN.values() for t in rows]
    labels = [lab for lab, rows in TRAIN.items() for _ in rows]
    return TextClassifier(seed=0).fit(texts, labels)


def test_a_variant_whose_meaning_was_destroyed_is_dropped_with_its_reason() -> None:
    def v(row: str, kind: str, label: str, text: str) -> Variant:
        return Variant(row_id=row, kind=kind, label=label, text=text)

    variants = [
        v("r1", "clean", "card_arrival", "My new card has not arrived yet."),
        v("r1", "typos", "card_arrival", "My new crad has not arived yet."),                 # kept
        v("r1", "very_short", "card_arrival", "refund money back"),                          # meaning destroyed
        v("r1", "lowercase", "card_arrival", "My new card  has not arrived yet."),           # unchanged
        v("r1", "emotional", "card_arrival", "My new card has not arrived yet"),             # no emotional trait
        v("r2", "clean", "card_arrival", "I want a refund, give me my money back."),         # checker disagrees
        v("r2", "lowercase", "card_arrival", "i want a refund, give me my money back."),
    ]
    verify_variants(variants, small_checker())
    got = {(x.row_id, x.kind): (x.kept, x.reason) for x in variants}
    assert got[("r1", "typos")] == (True, None)
    assert got[("r1", "very_short")] == (False, "label_changed")
    assert variants[2].checker_label == "refund"
    assert got[("r1", "lowercase")] == (False, "unchanged")
    assert got[("r1", "emotional")] == (False, "no_trait")
    assert got[("r2", "lowercase")] == (False, "label_unverifiable")
    assert got[("r1", "clean")][0] and got[("r2", "clean")][0], "clean rows are the reference: always kept"


def _wrong(label: str, labels: list[str]) -> str:
    return next(lab for lab in labels if lab != label)


def _half(text: str) -> bool:
    return hashlib.sha256(text.encode()).digest()[0] % 2 == 0


def test_scores_a_python_callable_per_kind_with_planted_failures(tmp_path: Path) -> None:
    """A model that fails every typo variant, names an invented label for every indirect one and fails
    half of the emotional ones (by a hash of the text), and is right otherwise."""
    train = load_dataset(SUPPORT / "train.csv")
    ev = load_dataset(SUPPORT / "eval.csv", role="eval")
    labels = train.label_set
    truth: dict[str, tuple[str, str]] = {}
    for x in make_variants(ev.frame.astype(str), train.frame, STRESS_KINDS, seed=0):
        truth.setdefault(x.text, (x.label, x.kind))
    asked: list[str] = []

    def model(texts: list[str]) -> list[str]:
        asked.extend(texts)
        out = []
        for t in texts:
            label, kind = truth[t]
            if kind == "typos" or (kind == "emotional" and _half(t)):
                out.append(_wrong(label, labels))
            else:
                out.append("ghost" if kind == "indirect" else label)
        return out

    res = stress_api.stress(SUPPORT / "train.csv", eval=SUPPORT / "eval.csv", model=model, out=tmp_path)
    assert res.rows == len(ev) and res.model == "model"
    assert res.clean.accuracy == 1.0 and res.clean.scored == len(ev)
    scores = {s.kind: s for s in res.per_kind}
    for kind in ("very_short", "no_punctuation", "lowercase", "mixed_intent"):
        assert scores[kind].scored > 0 and scores[kind].accuracy == 1.0, kind
    assert scores["typos"].accuracy == 0.0 and scores["typos"].drop == 1.0
    indirect = scores["indirect"]
    assert indirect.accuracy == 0.0 and indirect.unknown_labels == indirect.scored > 0
    assert res.unknown_predictions == {"ghost": indirect.scored}
    emotional = [x for x in res.variants if x.kind == "emotional" and x.correct is not None]
    expected = sum(not _half(x.text) for x in emotional) / len(emotional)
    assert scores["emotional"].accuracy == pytest.approx(expected, abs=1e-4) and 0 < expected < 1
    for s in res.per_kind:
        assert s.made == len(ev) and s.kept + sum(s.dropped.values()) == s.made and s.scored == s.kept
    # only the clean rows and the kept variants were sent, each distinct text once
    assert sorted(asked) == sorted({x.text for x in res.variants if x.kept})
    typo_failures = [f for f in res.failures if f.kind == "typos"]
    assert 0 < len(typo_failures) <= 5
    assert {f.kind for f in res.failures} == {"typos", "indirect", "emotional"}
    p = [f.checker_p or 0.0 for f in typo_failures]
    assert p == sorted(p, reverse=True), "the surest failures come first"
    by_row = {x.row_id: x.text for x in res.variants if x.kind == "clean"}
    assert all(f.clean_text == by_row[f.row_id] and f.text != f.clean_text for f in res.failures)

    md = (tmp_path / "stress.md").read_text(encoding="utf-8")
    assert all(f"| {k} |" in md for k in STRESS_KINDS) and "`ghost`" in md
    assert typo_failures[0].text[:60] in md
    again = StressResult.model_validate(json.loads((tmp_path / "stress.json").read_text(encoding="utf-8")))
    assert again.score("typos") == scores["typos"] and len(again.variants) == len(res.variants)


def test_a_callable_that_answers_the_wrong_number_of_labels_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="returned 1 labels"):
        stress_api.stress(SUPPORT / "eval.csv", model=lambda texts: ["x"], kinds=["lowercase"], max_rows=5)


def test_bad_input_is_a_one_line_error_with_exit_2(tmp_path: Path) -> None:
    no_labels = tmp_path / "nolabels.csv"
    no_labels.write_text("text\nwhere is my card\nrefund please\n", encoding="utf-8")
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("text,label\nwhere is my card,card_arrival\nrefund please,refund\n", encoding="utf-8")
    with pytest.raises(InputError, match="no eval row has a label that occurs in the training rows"):
        stress_api.stress(SUPPORT / "train.csv", eval=foreign, model=lambda t: t)
    cases = [(["--eval", str(no_labels)], "nolabels.csv"),
             (["--eval", str(foreign)], "foreign.csv"),
             (["--kind", "shouting"], "unknown variant kind 'shouting'"),
             (["--train", str(tmp_path / "missing.csv")], "missing.csv: file not found")]
    for extra, fragment in cases:
        out = tmp_path / "out"
        result = runner.invoke(app, ["stress", str(SUPPORT / "train.csv"), "--model", "openai/never-called",
                                     "--out", str(out), *extra])
        assert result.exit_code == 2, (extra, result.output)
        message = " ".join(result.stderr.split())
        assert fragment in message and "Traceback" not in result.output, (extra, message)
        assert not out.exists(), "no half-written output"


def test_the_reply_schema_offers_the_labels_but_accepts_an_invented_one() -> None:
    from audit_agent.llm.prompts import render_prompt
    from audit_agent.tasks.stress import PROMPT, reply_schema

    schema = reply_schema(("billing", "refund"))
    assert schema.model_json_schema()["properties"]["label"]["enum"] == ["billing", "refund"]
    assert schema.model_validate({"label": "ghost"}).label == "ghost"
    assert len(schema.model_validate({"label": "x" * 500}).label) <= 40, "a runaway reply is cut, not retried"
    messages = render_prompt(PROMPT, {"labels": ["billing", "refund"], "text": "refund pls"})
    assert "billing, refund" in messages[0]["content"]
    assert messages[-1]["role"] == "user" and "<row>\nrefund pls\n</row>" in messages[-1]["content"]
