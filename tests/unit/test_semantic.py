"""Meaning-level analyses on vectors: the neighbour index, paraphrase conflicts, the label vote,
semantic duplicates, coverage, separability and the encoder pilot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audit_agent.features import embeddings as E
from audit_agent.features.semantic import (
    conflict_pairs,
    embedding_vote,
    neighbour_label_margin,
    paraphrase_conflicts,
    semantic_duplicates,
)
from audit_agent.features.semantic_gap import embedding_separability, encoder_pilot, uncovered_real_rows
from audit_agent.features.vector_index import has_faiss, knn

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "paraphrase_conflicts" / "rows.csv"


def _unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _clusters(n_per: int, centres: int, dim: int = 32, noise: float = 0.15, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    c = _unit(rng.normal(size=(centres, dim)))
    vecs = np.vstack([c[i] + noise * rng.normal(size=(n_per, dim)) for i in range(centres)])
    return _unit(vecs), [f"l{i}" for i in range(centres) for _ in range(n_per)]


def _brute(ref: np.ndarray, q: np.ndarray, k: int, skip_self: bool) -> np.ndarray:
    sims = q @ ref.T
    if skip_self:
        np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def test_exact_index_equals_brute_force() -> None:
    vecs = _unit(np.random.default_rng(1).normal(size=(700, 24)))
    idx, sim = knn(vecs, 7)
    np.testing.assert_array_equal(idx, _brute(vecs, vecs, 7, True))
    np.testing.assert_allclose(sim[:, 0], np.sort(vecs @ vecs.T - 9 * np.eye(700), axis=1)[:, -1], rtol=1e-5)
    queries = _unit(np.random.default_rng(2).normal(size=(50, 24)))
    np.testing.assert_array_equal(knn(vecs, 5, queries)[0], _brute(vecs, queries, 5, False))


def test_index_pads_when_fewer_rows_than_k() -> None:
    idx, sim = knn(_unit(np.eye(3)), 5)
    assert idx.shape == (3, 5) and (idx[:, 2:] == -1).all() and np.isneginf(sim[:, 2:]).all()


@pytest.mark.skipif(not has_faiss(), reason="faiss-cpu not installed")
def test_approximate_index_finds_nearly_all_true_neighbours() -> None:
    vecs, _ = _clusters(150, 20, dim=48, noise=0.12)
    idx, _ = knn(vecs, 10, exact_max_rows=100)  # force the inverted-file path
    truth = _brute(vecs, vecs, 10, True)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(idx.tolist(), truth.tolist(), strict=True)])
    assert recall >= 0.95
    assert not (idx == np.arange(len(vecs))[:, None]).any()  # a row is never its own neighbour


def test_a_row_closer_to_another_label_is_a_conflict_pair() -> None:
    vecs, labels = _clusters(30, 3)
    labels[5] = "l2"  # row 5 sits among l0 rows but says l2
    pairs = conflict_pairs(vecs, labels)
    assert pairs and all(a == 5 for a, _, _, _ in pairs)
    assert {labels[b] for _, b, _, _ in pairs} == {"l0"}
    groups = paraphrase_conflicts(vecs, labels, [f"r{i}" for i in range(len(labels))])
    assert len(groups) == 1 and "r5" in groups[0].rows and groups[0].labels["l0"] >= 1


def test_clean_clusters_have_no_conflicts() -> None:
    vecs, labels = _clusters(30, 3)
    assert conflict_pairs(vecs, labels) == []


def _probs(labels: list[str], classes: list[str], backing: dict[int, str]) -> np.ndarray:
    """A classifier that backs each row's own label (0.99), or the label in `backing` for those rows."""
    out = np.full((len(labels), len(classes)), 0.01 / (len(classes) - 1))
    for i, label in enumerate(labels):
        out[i, classes.index(backing.get(i, label))] = 0.99
    return out


def test_the_classifier_gate_keeps_a_pair_only_where_it_allows_the_other_label() -> None:
    vecs, labels = _clusters(30, 3)
    labels[5] = "l2"  # row 5 sits among l0 rows but says l2
    classes = ["l0", "l1", "l2"]
    planted = conflict_pairs(vecs, labels, probs=_probs(labels, classes, {5: "l0"}), classes=classes)
    assert planted and {a for a, _, _, _ in planted} == {5} and {labels[b] for _, b, _, _ in planted} == {"l0"}
    # close in meaning, but the classifier backs each row's own label: not reported (meaning alone reports it)
    agreeing = _probs(labels, classes, {})
    assert conflict_pairs(vecs, labels, probs=agreeing, classes=classes) == []
    assert conflict_pairs(vecs, labels, rank=5, z=3.0)
    # a label the classifier has no column for is no evidence either way
    assert conflict_pairs(vecs, labels, probs=agreeing[:, 1:], classes=classes[1:])  # no column for l0
    groups = paraphrase_conflicts(vecs, labels, [f"r{i}" for i in range(len(labels))],
                                  probs=_probs(labels, classes, {5: "l0"}), classes=classes)
    assert groups and all(p.p_other == 0.99 for g in groups for p in g.pairs)


def test_the_gate_drops_a_row_that_is_merely_near_a_wrongly_labelled_one() -> None:
    vecs, labels = _clusters(30, 3)
    labels[5] = "l2"  # the wrong one
    classes = ["l0", "l1", "l2"]
    found = conflict_pairs(vecs, labels, probs=_probs(labels, classes, {5: "l0"}), classes=classes)
    # l0 rows whose nearest rows include row 5 [l2]: the classifier gives them no chance of l2
    assert not any(b == 5 for _, b, _, _ in found)
    assert any(b == 5 for _, b, _, _ in conflict_pairs(vecs, labels, rank=5, z=0.0, margin=-1.0))


def test_without_per_label_probabilities_the_check_judges_on_meaning_alone() -> None:
    from audit_agent.checks.meaning import _classifier
    from audit_agent.config import AuditConfig
    from audit_agent.context import AuditContext
    from audit_agent.dataset import Dataset
    from audit_agent.engine.features import EngineOOF

    frame = pd.DataFrame({"id": ["0", "1", "2"], "text": ["a", "b", "c"], "label": ["x", "y", "x"]})
    ctx = AuditContext(train=Dataset(path=Path("t.csv"), frame=frame), config=AuditConfig())
    given = np.array([0, 1, 0])
    ctx.features.__dict__["oof"] = EngineOOF(classes=["x", "y"], given=given, predicted=given,
                                             p_predicted=np.ones(3), temperature=1.0, fold=np.zeros(3, dtype=int))
    probs, classes, note = _classifier(ctx, np.arange(3))
    assert probs is None and classes is None and note and "meaning alone" in note


def test_neighbour_vote_prefers_the_label_of_the_neighbourhood() -> None:
    vecs, labels = _clusters(20, 2)
    given = np.array([0 if v == "l0" else 1 for v in labels])
    given[3] = 1  # an l0 row labelled 1
    suggested = 1 - given
    p = neighbour_label_margin(vecs, given, suggested, np.array([3, 4]))
    assert p[0] > 0.9 and p[1] < 0.1
    sampled = embedding_vote(vecs[::2], given, suggested, np.array([2, 3, 4]), np.arange(0, len(given), 2))
    assert np.isnan(sampled[3]) and not np.isnan(sampled[2]) and not np.isnan(sampled[4])


def test_semantic_duplicates_keep_the_first_row_and_respect_labels() -> None:
    rng = np.random.default_rng(0)
    base = _unit(rng.normal(size=(6, 16)))
    vecs = _unit(np.vstack([base, base[0] + 0.01 * rng.normal(size=16), base[1] + 0.01 * rng.normal(size=16)]))
    labels = ["a", "b", "c", "d", "e", "f", "a", "x"]  # row 7 restates row 1 under another label
    groups = semantic_duplicates(vecs, labels, [f"r{i}" for i in range(8)], threshold=0.95)
    assert [(g.keep, g.drop) for g in groups] == [("r0", ["r6"])]


def test_uncovered_rows_are_the_ones_far_from_training() -> None:
    train, tl = _clusters(40, 3, seed=0)
    rng = np.random.default_rng(5)
    near = _unit(train[:10] + 0.05 * rng.normal(size=(10, train.shape[1])))
    far = _unit(rng.normal(size=(4, train.shape[1])))
    real = np.vstack([near, far])
    ids = [f"q{i}" for i in range(len(real))]
    cov = uncovered_real_rows(train, real, ids, [f"t{i}" for i in range(len(train))])
    flagged = {r for c in cov.clusters for r in c.rows}
    assert flagged == {"q10", "q11", "q12", "q13"} and cov.uncovered == 4
    labelled = uncovered_real_rows(train, real, ids, [f"t{i}" for i in range(len(train))],
                                   real_labels=["l0"] * 10 + ["l1"] * 4, train_labels=tl)
    assert {c.label for c in labelled.clusters} == {"l1"}  # the near rows sit in their own label's cluster


def test_separability_is_chance_for_one_distribution_and_high_for_two() -> None:
    a, _ = _clusters(100, 4, seed=1)
    same = embedding_separability(a[::2], a[1::2])
    rng = np.random.default_rng(3)
    other = _unit(a[1::2] + 0.6 * rng.normal(size=a[1::2].shape) + 0.5)
    shifted = embedding_separability(a[::2], other)
    assert same is not None and shifted is not None
    assert same.auc < 0.65 and shifted.auc > 0.9


def test_encoder_pilot_scores_held_out_and_named_sets() -> None:
    train, labels = _clusters(30, 3, seed=2)
    real, real_labels = _clusters(5, 3, seed=2, noise=0.1)
    pilot = encoder_pilot(train, labels, {"real": (real, real_labels)})
    assert pilot is not None and set(pilot.scores) == {"held_out", "real"}
    assert pilot.scores["held_out"].accuracy > 0.9 and pilot.scores["real"].n == 15
    assert pilot.fitted_rows == 72


@pytest.mark.slow
@pytest.mark.skipif(not E.available(), reason="the embed extra is not installed")
def test_hand_written_paraphrase_conflicts_are_found(tmp_path: Path) -> None:
    frame = pd.read_csv(FIXTURE, dtype=str, keep_default_na=False)
    vecs = E.TextEmbedder(tmp_path)(frame["text"].tolist())
    pairs = conflict_pairs(vecs, frame["label"].tolist())
    found = {frozenset((frame["id"][a], frame["id"][b])) for a, b, _, _ in pairs}
    planted_rows = {r.id for r in frame.itertuples() if r.planted_conflict_with}
    planted = {frozenset((r.id, r.planted_conflict_with)) for r in frame.itertuples() if r.planted_conflict_with}
    assert len(planted & found) >= 3  # at least three of the four restated rows, with their partner
    assert all(pair & planted_rows for pair in found)  # and nothing between two correctly labelled rows
