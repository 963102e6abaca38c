"""exact_duplicate, near_duplicate, conflicting_labels and the NeighborIndex behind them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from datasketch import MinHash

from audit_agent.checks import REGISTRY
from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.features.neighbors import NeighborIndex, Sketcher, trigram_shingles
from audit_agent.features.text import normalize
from audit_agent.features.word_similarity import WordTable, pair_similarities, text_similarity
from tests.clean_rows import CLEAN

conflicting_labels = REGISTRY["conflicting_labels"].run
exact_duplicate = REGISTRY["exact_duplicate"].run
near_duplicate = REGISTRY["near_duplicate"].run


def make_ctx(rows: list[tuple[str, str]], kind: str = "classification") -> AuditContext:
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(len(rows))],
                          "text": [t for t, _ in rows], "label": [lab for _, lab in rows]})
    return AuditContext(train=Dataset(Path("train.csv"), frame, kind=kind),  # type: ignore[arg-type]
                        config=AuditConfig())


def group_findings(findings):
    return [f for f in findings if not getattr(f.evidence, "summary", None)]


def test_similarity_tolerates_typos_and_small_edits() -> None:
    def sim(a: str, b: str) -> float:
        return text_similarity(normalize(a).split(), normalize(b).split())

    assert sim("how do i reset my pin", "how can i reset my pin?") == pytest.approx(5 / 7)
    assert sim("Hi, I need to reset my PIN.", "hi i need to reset my pin please") == pytest.approx(7 / 8)
    assert sim("please reset my password", "plaese reset my pasword") == 1.0
    assert sim("close my account", "open a card") == 0.0


def test_signatures_match_datasketch_minhash() -> None:
    texts = ["how do i reset my pin", "the exchange rate looks wrong"]
    sketcher = Sketcher(num_perm=32, seed=3, candidate_threshold=0.5)
    sig, has = sketcher.signatures([*texts, ""])
    shingles, owner = trigram_shingles(texts)
    for i in range(len(texts)):
        reference = MinHash(num_perm=32, seed=3, hashfunc=lambda x: x)
        reference.update_batch(shingles[owner == i].tolist())
        assert np.array_equal(reference.hashvalues, sig[i])
    assert has.tolist() == [True, True, False]


def test_index_groups_pairs_and_query() -> None:
    texts = [normalize(t) for t in ["Hi, I need to reset my PIN.", "hi i need to reset my pin please",
                                    "What is the exchange rate?", "hi i need to reset my pin", "Close my account"]]
    index = NeighborIndex.build(texts, threshold=0.8, num_perm=128, seed=0)
    assert index.exact_groups() == [[0, 3]]
    assert [(a, b) for a, b, _ in index.pairs()] == [(0, 1)]
    assert index.groups() == [[0, 1, 3]]
    found = index.query([normalize("hi I need to reset my PIN!!"), "totally unrelated words here",
                         normalize("i need to reset my pin please")])
    assert found[0][0] == (0, 1.0)
    assert found[1] == []
    assert [pos for pos, _ in found[2]] == [1]  # 7/7 words; row 0 shares only 6 of 8


def test_exact_duplicates_found_with_keep_and_drop() -> None:
    rows = [*CLEAN, ("what time does the branch open on saturdays", "opening_hours"),
            ("WHAT TIME does the branch open on Saturdays!!", "opening_hours")]
    findings = group_findings(exact_duplicate(make_ctx(rows)))
    assert len(findings) == 1
    ev = findings[0].evidence
    assert ev["size"] == 3 and ev["keep"] == ["r0"] and ev["drop"] == ["r12", "r13"]
    assert set(findings[0].rows) == {"r0", "r12", "r13"}


def test_near_duplicates_found_and_drop_union_keeps_one_per_cluster() -> None:
    rows = [*CLEAN, ("Hi, I need to reset my PIN.", "pin"), ("hi i need to reset my pin please", "pin"),
            ("Hi I need to reset my pin", "pin")]
    ctx = make_ctx(rows)
    near = group_findings(near_duplicate(ctx))
    assert len(near) == 1
    assert near[0].evidence["keep"] == ["r12"]
    assert sorted(near[0].evidence["drop"]) == ["r13", "r14"]
    exact = group_findings(exact_duplicate(ctx))
    drops = {r for f in exact + near for r in f.evidence["drop"]}
    assert drops == {"r13", "r14"}


def test_conflicting_labels_found_side_by_side() -> None:
    rows = [*CLEAN, ("Hi, I need to reset my PIN.", "change_pin"), ("hi i need to reset my pin please", "pin_blocked"),
            ("Where do I find my IBAN in the app", "card_details")]
    findings = group_findings(conflicting_labels(make_ctx(rows)))
    assert len(findings) == 2
    by_rows = {frozenset(f.rows): f for f in findings}
    pin = by_rows[frozenset({"r12", "r13"})]
    assert pin.evidence["label_pairs"] == [("change_pin", "pin_blocked")]
    assert {pin.evidence["pairs"][0]["a"]["label"], pin.evidence["pairs"][0]["b"]["label"]} == {"change_pin", "pin_blocked"}
    iban = by_rows[frozenset({"r6", "r14"})]
    assert iban.evidence["similarity"] == 1.0
    assert {f.severity.value for f in findings} == {"high"}


def test_same_label_near_duplicates_are_not_conflicts() -> None:
    rows = [*CLEAN, ("Hi, I need to reset my PIN.", "pin"), ("hi i need to reset my pin please", "pin")]
    assert conflicting_labels(make_ctx(rows)) == []


def test_clean_data_has_no_findings() -> None:
    ctx = make_ctx(CLEAN)
    assert exact_duplicate(ctx) == []
    assert near_duplicate(ctx) == []
    assert conflicting_labels(ctx) == []


def test_large_exact_group_is_high_severity() -> None:
    rows = CLEAN * 1 + [("I want a refund", "refund")] * 5
    findings = group_findings(exact_duplicate(make_ctx(rows)))
    assert [f.severity.value for f in findings] == ["high"]
    assert len(findings[0].evidence["drop"]) == 4


def test_vectorised_similarity_equals_text_similarity() -> None:
    """pair_similarities (sparse counts + typo pairs) gives text_similarity's score on every pair,
    including repeated words, negations, words with two typo partners and empty overlap."""
    texts = [normalize(t) for t in [
        "how do i reset my pin", "how can i reset my pin", "please reset my password", "plaese reset my pasword",
        "i cant log in", "i can log in", "in on an", "i'm on and", "pin pin pin card", "pin pni card card",
        "close my account", "open a card", "to top tap", "top to tip", "", "the the the", "teh the",
    ]]
    table = WordTable.build(texts)
    i, j = np.triu_indices(len(texts), k=1)
    fast = pair_similarities(table, table, i, j)
    slow = [text_similarity(texts[a].split(), texts[b].split(), table.word_weights) for a, b in zip(i, j, strict=True)]
    assert fast == pytest.approx(slow, abs=1e-12)
    assert fast[(i == 2) & (j == 3)][0] == 1.0  # typos match
    assert fast[(i == 4) & (j == 5)][0] < 1.0  # "cant" is not a typo of "can"
