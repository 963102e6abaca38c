"""coverage_gap: messy buckets missing from a polished train set are found, per label and against
the real batch; a varied train set raises nothing serious."""

from __future__ import annotations

import json

import pandas as pd

from audit_agent.checks import REGISTRY
from audit_agent.checks.coverage import BUCKETS, label_keyword_mask
from audit_agent.features.style import has_wordfreq
from audit_agent.findings import Severity
from tests.unit.test_real_gap import PHRASES, make_ctx, make_frame

coverage_gap = REGISTRY["coverage_gap"].run


def _by_bucket(findings):
    return {f.evidence["bucket"]: f for f in findings if getattr(f.evidence, "kind", None) == "bucket"}


def test_polished_train_vs_messy_real_has_high_gaps():
    ctx = make_ctx(make_frame(400, 0.0, 1), real=make_frame(60, 1.0, 2))
    findings = coverage_gap(ctx)
    json.dumps([f.evidence.model_dump(mode="json") for f in findings])
    buckets = _by_bucket(findings)
    for name in ("very_short", "all_lowercase", "no_end_punctuation"):
        f = buckets[name]
        assert f.severity == Severity.HIGH, name
        assert f.evidence["train_share"] < 0.01 and f.evidence["real_share"] >= 0.1
        assert set(f.evidence["labels_empty"]) == set(PHRASES)
        assert f.evidence["real_examples"]
    summary = [f for f in findings if getattr(f.evidence, "kind", None) == "table"]
    assert len(summary) == 1 and summary[0].severity == Severity.INFO
    table = summary[0].evidence["table"]
    assert set(table) == set(PHRASES)
    assert all(set(row) == set(BUCKETS) for row in table.values())
    assert summary[0].evidence["real_overall"]["very_short"] >= 0.1
    assert sum(summary[0].evidence["label_rows"].values()) == 400


def test_varied_train_has_no_serious_gap():
    ctx = make_ctx(make_frame(800, 0.5, 3), real=make_frame(300, 0.5, 4))
    findings = coverage_gap(ctx)
    assert not [f for f in findings if f.severity in (Severity.HIGH, Severity.MEDIUM)], \
        [(f.severity, f.message) for f in findings]
    table = findings[-1].evidence["train_overall"]
    assert table["very_short"] > 0.2
    assert has_wordfreq()  # a core dependency; the fallback word list would take these typos for words
    assert table["typos"] > 0.05


def test_without_real_an_absent_bucket_is_medium():
    findings = coverage_gap(make_ctx(make_frame(300, 0.0, 5)))
    buckets = _by_bucket(findings)
    assert buckets["very_short"].severity == Severity.MEDIUM
    assert buckets["very_short"].evidence["real_share"] is None


def test_label_keyword_mask():
    frame = pd.DataFrame({"text": ["my card arrived late", "where is it", "Refunds please", "nothing here"],
                          "label": ["card_arrival", "card_arrival", "refund_request", "refund_request"]})
    assert label_keyword_mask(frame).tolist() == [False, True, False, True]
