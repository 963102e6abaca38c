"""label_leak: a planted polite formula used only in one label is found as a style leak (the whole
phrase, the right label, high severity); topic words are marked topical; clean data has no style leak."""

from __future__ import annotations

from audit_agent.checks import REGISTRY
from audit_agent.checks.leaks import leak_kind
from audit_agent.findings import Severity
from tests.unit.test_phrasing import clean_rows, make_ctx

label_leak = REGISTRY["label_leak"].run


def _leaks(findings: list) -> list:
    return [f for f in findings if not getattr(f.evidence, "summary", None)]


def test_clean_data_has_no_style_leak() -> None:
    findings = label_leak(make_ctx(clean_rows()))
    summary = [f for f in findings if getattr(f.evidence, "summary", None)]
    assert len(summary) == 1 and summary[0].evidence["n_style"] == 0
    assert all(f.evidence["kind"] == "topical" for f in _leaks(findings))
    assert all(f.severity in (Severity.LOW, Severity.INFO) for f in findings)


def test_planted_polite_formula_is_a_style_leak() -> None:
    frame = clean_rows()
    refund = frame.index[frame["label"] == "refund"][:20]
    frame.loc[refund, "text"] = "I would like to request help. " + frame.loc[refund, "text"]
    findings = _leaks(label_leak(make_ctx(frame)))
    style = [f for f in findings if f.evidence["kind"] == "style"]
    assert style, "the planted phrase must be found"
    top = style[0]
    assert "i would like to request" in top.evidence["phrase"]
    assert top.evidence["top_label"] == "refund"
    assert top.labels == ["refund"]
    assert top.evidence["support"] == 20 and top.evidence["purity"] == 1.0
    assert top.evidence["lift"] == 4.0
    assert top.severity == Severity.HIGH
    assert {str(r) for r in top.rows} == {f"r{i}" for i in refund}
    assert all(f.evidence["top_label"] == "refund" for f in style)
    assert len(style) == 1, "overlapping pieces of one phrase are merged into one finding"
    # style leaks rank before topical words
    assert findings[0].evidence["kind"] == "style"


def test_topic_words_are_topical_not_style() -> None:
    findings = _leaks(label_leak(make_ctx(clean_rows())))
    phrases = {f.evidence["phrase"]: f for f in findings}
    assert "refund" in " ".join(phrases)  # the label's own word predicts it ...
    refund = next(f for p, f in phrases.items() if "refund" in p.split())
    assert refund.evidence["kind"] == "topical"  # ... but is not a shortcut
    assert refund.severity in (Severity.LOW, Severity.INFO)


def test_leak_kind_rules() -> None:
    assert leak_kind("thanks in advance for your help", "billing") == "style"
    assert leak_kind("i hope you're doing well", "billing") == "style"
    assert leak_kind("for the same", "billing") == "topical"  # no politeness word: not a formula
    assert leak_kind("please refund me", "refund") == "topical"  # uses the label's topic word
    assert leak_kind("package stuck", "shipping") == "topical"


def test_planted_opening_leak_is_reported_as_opening() -> None:
    frame = clean_rows()
    rows = frame.index[frame["label"] == "account"][:15]
    frame.loc[rows, "text"] = "Good day to you. " + frame.loc[rows, "text"]
    findings = _leaks(label_leak(make_ctx(frame)))
    hits = [f for f in findings if "good day to you" in f.evidence["phrase"]]
    assert hits and all(f.evidence["top_label"] == "account" for f in hits)
    assert any(f.evidence["kind"] == "style" for f in hits)


def test_needs_class_labels() -> None:
    assert REGISTRY["label_leak"].needs == ("labels", "classification", "two_labels")
    frame = clean_rows()
    frame["label"] = [f"Reply {i}." for i in range(len(frame))]
    assert REGISTRY["label_leak"].missing(make_ctx(frame, kind="generation")) == \
        "needs class labels (this data has target texts)"
    assert REGISTRY["label_leak"].missing(make_ctx(clean_rows())) is None
