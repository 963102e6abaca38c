"""The budget-driven plan (`plan_budget`, a pure function), the sample extension and the follow-up
planner."""

from __future__ import annotations

from collections import Counter

import pytest

from audit_agent.findings import Finding, Severity
from audit_agent.jobs.judge_followup import Claim, ClusterLog, find_clusters, plan_followups
from audit_agent.jobs.judge_plan import (
    LabelIndex,
    Suspect,
    plan_budget,
    rank_suspects,
    suspects_from_findings,
    water_fill,
)
from tests.fakes import evidence_of

SIZES = {"a": 100, "b": 60, "c": 30, "d": 4}


def index(sizes: dict[str, int] = SIZES, seed: int = 0) -> LabelIndex:
    ids, labels = [], []
    for lab, n in sizes.items():
        for i in range(n):
            ids.append(f"{lab}{i}")
            labels.append(lab)
    return LabelIndex(ids, labels, seed=seed)


def suspects(*rows: tuple[str, float]) -> dict[str, Suspect]:
    return {rid: Suspect(score, 5, ["label_issue"]) for rid, score in rows}


def test_water_fill_gives_equal_rows_and_takes_small_labels_whole() -> None:
    alloc = water_fill(SIZES, 40)
    assert sum(alloc.values()) == 40 and alloc["d"] == 4
    assert max(alloc["a"], alloc["b"], alloc["c"]) - min(alloc["a"], alloc["b"], alloc["c"]) <= 1
    assert water_fill(SIZES, 10_000) == SIZES
    assert water_fill(SIZES, 0) == dict.fromkeys(SIZES, 0)


@pytest.mark.parametrize("budget", [0, 5, 30, 60, 180, 1000])
def test_plan_never_spends_more_than_the_budget(budget: int) -> None:
    sus = suspects(*[(f"a{i}", 1 - i / 100) for i in range(50)])
    plan = plan_budget(sus, index(), budget, canaries=min(10, budget // 3), seed=0)
    first = plan.first_round()
    assert len({p.row_id for p in first}) == len(first)
    assert len(first) + plan.canaries + plan.followup_budget == budget


@pytest.mark.parametrize("budget", [0, 5, 30, 60, 180])
def test_a_reserve_for_second_looks_is_held_back_from_the_weakest_suspects(budget: int) -> None:
    sus = suspects(*[(f"a{i}", 1 - i / 200) for i in range(100)], *[(f"b{i}", 0.4 - i / 200) for i in range(60)])
    plain = plan_budget(sus, index(), budget, canaries=min(10, budget // 3), seed=0)
    held = plan_budget(sus, index(), budget, canaries=min(10, budget // 3), seed=0, reserve=9)
    assert len(held.first_round()) + held.canaries + held.followup_budget == budget
    dropped = len(plain.suspects) - len(held.suspects)
    assert 0 <= dropped <= 9 and held.followup_budget == plain.followup_budget + dropped
    kept, order = {p.row_id for p in held.suspects}, [p.row_id for p in plain.suspects]
    gone = [order.index(r) for r in order if r not in kept]
    assert kept <= set(order) and all(i > order.index(r) for i in gone for r in kept if r not in held.sample_rows())
    if budget == 180:  # the suspects overflow the budget: the reserve comes out of their tail
        assert dropped == 9 and held.followup_budget >= 9
    # a suspect scoring at or above `reserve_below` never gives way to the reserve
    strong = plan_budget(sus, index(), budget, canaries=min(10, budget // 3), seed=0, reserve=9, reserve_below=0.0)
    assert [p.row_id for p in strong.suspects] == [p.row_id for p in plain.suspects]
    assert strong.followup_budget == plain.followup_budget


def test_suspects_come_first_best_score_first_then_the_stratified_sample() -> None:
    sus = suspects(("b3", 0.5), ("a7", 0.99), ("c1", 0.8))
    plan = plan_budget(sus, index(), 100, canaries=10, seed=0, sample_share=0.3)
    first = plan.first_round()
    assert [p.row_id for p in first[:3]] == ["a7", "c1", "b3"]
    assert all(p.kind == "suspect" for p in first[:3]) and all(p.kind == "sample" for p in first[3:])
    sample = [p for p in first if p.in_sample]
    per_label = Counter(p.label for p in sample)
    assert sum(plan.sample_size.values()) == plan.sample_target == round(0.3 * 90)
    assert per_label["d"] == 4 and max(per_label.values()) - min(per_label[x] for x in "abc") <= 1
    assert plan.followup_budget == 90 - len(first)


def test_a_suspect_the_random_draw_picks_is_judged_once_and_counts_in_the_sample() -> None:
    idx = index()
    probe = plan_budget({}, idx, 100, canaries=0, seed=3)
    in_sample = sorted(probe.sample_rows())[0]
    plan = plan_budget(suspects((in_sample, 0.9)), idx, 100, canaries=0, seed=3)
    first = plan.first_round()
    hit = [p for p in first if p.row_id == in_sample]
    assert len(hit) == 1 and hit[0].kind == "suspect" and hit[0].in_sample
    assert len(first) == plan.sample_target  # the suspect cost nothing extra


def test_too_many_suspects_keep_the_sample_and_drop_the_weakest_suspects() -> None:
    sus = suspects(*[(f"a{i}", 1 - i / 1000) for i in range(100)])
    plan = plan_budget(sus, index(), 60, canaries=10, seed=0, sample_share=0.25, floor_per_label=3)
    first = plan.first_round()
    assert len(first) == 50 and plan.followup_budget == 0
    assert plan.sample_target >= 12  # the floor: 3 rows x 4 labels
    kept = [int(p.row_id[1:]) for p in first if p.kind == "suspect" and not p.in_sample]
    dropped = [i for i in range(100) if f"a{i}" not in {p.row_id for p in first}]
    assert kept == sorted(kept) and len(kept) == 50 - plan.sample_target
    assert max(kept) < min(dropped) and plan.suspects_named == 100  # the best scores are kept, in order


def test_the_floor_never_takes_more_than_half_the_budget() -> None:
    many = index({f"l{i:02d}": 10 for i in range(77)})
    plan = plan_budget(suspects(("l00_0", 1.0)), many, 160, canaries=16, seed=0, floor_per_label=3)
    assert plan.sample_target == 72 and plan.sample_target < 3 * 77


def test_the_plan_is_a_pure_function_of_its_inputs() -> None:
    sus = suspects(("a1", 0.9), ("b2", 0.8))
    one = plan_budget(sus, index(seed=0), 80, 8, seed=5).first_round()
    two = plan_budget(sus, index(seed=0), 80, 8, seed=5).first_round()
    other = plan_budget(sus, index(seed=0), 80, 8, seed=6).first_round()
    assert one == two and one != other


def test_extend_sample_grows_round_robin_and_counts_judged_rows_free() -> None:
    plan = plan_budget({}, index(), 40, canaries=0, seed=0, sample_share=0.25)
    before = dict(plan.sample_size)
    next_a = plan.sample_order["a"][before["a"]]
    picks, free = plan.extend_sample({next_a}, 6)
    assert len(picks) == 6 and free == [next_a]
    assert all(p.kind == "sample" and p.in_sample for p in picks)
    assert Counter(p.label for p in picks) == {"a": 1, "b": 2, "c": 2, "d": 1}
    assert sum(plan.sample_size.values()) - sum(before.values()) == 7  # the free row joined the sample
    small = plan_budget({}, index({"x": 3, "y": 2}), 100, canaries=0, seed=0)
    assert small.extend_sample(set(), 50) == ([], [])  # every row already in the first round


def test_suspects_are_rows_of_label_in_doubt_kinds_scored_by_the_finding() -> None:
    ids = {"r1": 0, "r2": 1, "r3": 2, "r4": 3}
    findings = [
        Finding(check="label_issue", severity=Severity.HIGH, message="x", rows=["r1"],
                evidence=evidence_of("label_issue", given_label="a", suggested_label="b", score=0.995)),
        Finding(check="conflicting_labels", severity=Severity.HIGH, message="y", rows=["r2", "r3"]),
        Finding(check="near_duplicate", severity=Severity.HIGH, message="dup", rows=["r4"]),
        Finding(check="label_issue", severity=Severity.HIGH, message="other split", rows=["r4"], split="eval"),
    ]
    sus = suspects_from_findings(findings, ids)
    assert set(sus) == {"r1", "r2", "r3"}  # near duplicates with one label do not put a label in doubt
    assert sus["r1"].score == pytest.approx(0.995) and sus["r2"].score == 1.0
    assert rank_suspects(sus) == ["r2", "r3", "r1"]


def test_clusters_and_followups() -> None:
    idx = index()
    claims = [Claim("a1", "a", "b"), Claim("a2", "a", "b"), Claim("c1", "c", "d", verified_contradicted=True)]
    clusters = find_clusters(claims, [])
    keys = {c.key for c in clusters}
    assert keys == {"a -> b", "label a", "label c"}
    doubt = {idx.id_pos[f"a{i}"]: i for i in range(100)}
    picks, owner = plan_followups(clusters, idx, {"a1", "a2", "c1"}, 3,
                                  rank_by_label=lambda pos, lab: sorted(pos, reverse=True),
                                  rank_by_doubt=lambda pos: sorted(pos, key=lambda p: doubt.get(p, 1000 + p)))
    assert not {p.row_id for p in picks} & {"a1", "a2", "c1"}
    assert len({p.row_id for p in picks}) == len(picks) == 9
    capped, _ = plan_followups(clusters, idx, {"a1", "a2", "c1"}, 3,
                               rank_by_label=lambda pos, lab: sorted(pos, reverse=True),
                               rank_by_doubt=lambda pos: sorted(pos, key=lambda p: doubt.get(p, 1000 + p)), limit=2)
    assert [p.row_id for p in capped] == ["a0", "a3"]  # over the limit: the most doubted rows win
    log = ClusterLog()
    log.record(picks, owner)
    assert log.live(clusters, claimed=set()) == []
    hit = next(p.row_id for p in picks if owner[p.row_id] == "label c")
    assert [c.key for c in log.live(clusters, claimed={hit})] == ["label c"]


def test_doubted_rows_are_unjudged_rows_whose_label_the_classifier_doubts_least_probable_first() -> None:
    import numpy as np

    from audit_agent.jobs.judge_followup import DOUBT_MAX_P, doubted_rows

    idx = index({"a": 5, "b": 5})
    own = np.array([0.9, 0.1, 0.05, 0.2, DOUBT_MAX_P, 0.8, 0.02, 0.9, 0.9, 0.9])
    tops = ["a", "b", "b", "a", "b", "b", "a", "b", "b", "b"]  # a0, a3 and b0 have their own label on top
    picks = doubted_rows(idx, {"a2"}, own, tops, 10)
    assert [p.row_id for p in picks] == ["b1", "a1"]  # a2 judged, a3 its own top, a4 not under the bound
    assert [p.row_id for p in doubted_rows(idx, set(), own, tops, 10)] == ["b1", "a2", "a1"]
    assert [p.row_id for p in doubted_rows(idx, set(), own, tops, 2)] == ["b1", "a2"]
    assert all(p.kind == "followup" and "doubts its label" in p.reason for p in doubted_rows(idx, set(), own, tops, 3))
    assert doubted_rows(idx, set(), None, None, 5) == []
