"""label_issue / label_overlap / out_of_fold on small synthetic frames."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.svm import LinearSVC

from audit_agent.checks import REGISTRY
from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.features.classifier import TextClassifier, _full_scores, make_vectorizer, out_of_fold
from audit_agent.features.label_signals import detect_label_issues

label_issue = REGISTRY["label_issue"].run
label_overlap = REGISTRY["label_overlap"].run

TOPICS = {
    "billing": ["invoice", "charge", "refund", "payment", "bill", "fee"],
    "shipping": ["parcel", "delivery", "courier", "tracking", "package", "shipment"],
    "account": ["password", "login", "username", "profile", "signin", "email"],
    "weather": ["rain", "sunny", "forecast", "temperature", "snow", "wind"],
}
FRAMES = ["can you help with my {} and {}", "question about the {} please, also {}",
          "i need info on {} {}", "what about the {} for my {}", "{} issue: {} not working"]


def _frame(n_per: int, seed: int) -> pd.DataFrame:
    rnd = random.Random(seed)
    rows = []
    for label, words in TOPICS.items():
        for _ in range(n_per):
            rows.append((rnd.choice(FRAMES).format(rnd.choice(words), rnd.choice(words)), label))
    rnd.shuffle(rows)
    return pd.DataFrame({"id": [f"r{i}" for i in range(len(rows))], "text": [t for t, _ in rows],
                         "label": [lab for _, lab in rows]})


def _ctx(frame: pd.DataFrame) -> AuditContext:
    return AuditContext(train=Dataset(path=Path("train.csv"), frame=frame), config=AuditConfig())


def _flip(frame: pd.DataFrame, n: int, seed: int) -> tuple[pd.DataFrame, set[str]]:
    rng = np.random.default_rng(seed)
    out = frame.copy()
    rows = rng.choice(len(out), n, replace=False)
    labels = sorted(TOPICS)
    for r in rows:
        true = out.at[r, "label"]
        out.at[r, "label"] = labels[(labels.index(true) + 1) % len(labels)]
    return out, set(out["id"].iloc[rows])


def test_flipped_labels_are_found() -> None:
    frame, flipped = _flip(_frame(60, 1), 10, seed=2)
    findings = label_issue(_ctx(frame))
    rows = {f.rows[0] for f in findings if getattr(f.evidence, "given_label", None)}
    assert len(rows & flipped) >= 7
    assert len(rows - flipped) <= 2
    summary = [f for f in findings if "flagged" in f.evidence]
    assert len(summary) == 1 and summary[0].evidence["flagged"] == len(rows)
    one = next(f for f in findings if getattr(f.evidence, "given_label", None))
    assert one.evidence["suggested_label"] != one.evidence["given_label"]
    assert one.evidence["p_suggested"] > one.evidence["p_given"]


def test_clean_separable_data_has_no_high_severity_issue() -> None:
    findings = label_issue(_ctx(_frame(60, 3)))
    assert not [f for f in findings if f.severity.value == "high"]
    assert sum(1 for f in findings if getattr(f.evidence, "given_label", None)) <= 2


def test_oof_handles_rare_classes_and_missing_labels() -> None:
    frame = _frame(30, 4)
    frame.loc[0, "label"] = "singleton"
    frame.loc[1, "label"] = None
    oof = out_of_fold(Dataset(path=Path("t.csv"), frame=frame), folds=5, seed=0)
    assert oof.probs.shape == (len(frame), 5)
    assert oof.given[1] == -1 and (oof.given >= 0).sum() == len(frame) - 1
    assert np.allclose(oof.probs.sum(axis=1), 1, atol=1e-4)
    assert oof.accuracy() > 0.9
    res = detect_label_issues(oof)
    assert not res.flagged[1]


def test_label_overlap_finds_merged_classes() -> None:
    frame = _frame(50, 5)
    # 'shipping' rows split at random into two labels: they collide completely
    rng = np.random.default_rng(0)
    ship = frame["label"] == "shipping"
    frame.loc[ship, "label"] = np.where(rng.random(ship.sum()) < 0.5, "shipping", "delivery")
    findings = label_overlap(_ctx(frame))
    assert findings and set(findings[0].labels) == {"shipping", "delivery"}
    assert findings[0].evidence["examples_a_as_b"] or findings[0].evidence["examples_b_as_a"]
    assert all({"shipping", "delivery"} == set(f.labels) for f in findings if f.severity.value == "high")


@pytest.mark.parametrize("seed", [6])
def test_label_overlap_quiet_on_clean_data(seed: int) -> None:
    assert label_overlap(_ctx(_frame(50, seed))) == []


def test_text_classifier_with_string_labels_predicts_probabilities() -> None:
    """String labels (also numeric-looking, in a Series with a non-range index) fit and predict."""
    frame = _frame(20, 7)
    labels = pd.Series(frame["label"].map({"billing": "10", "shipping": "2", "account": "a", "weather": "b"}).to_numpy(),
                       index=range(100, 100 + len(frame)))
    model = TextClassifier().fit(frame["text"].tolist(), labels)
    probs = model.predict_proba(["refund for my invoice and payment", "the courier lost my parcel"])
    assert probs.shape == (2, 4) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    assert model.predict(["refund for my invoice and payment", "the courier lost my parcel"]) == ["10", "2"]
    assert all(type(c) is str for c in model.classes)


def test_full_scores_maps_a_model_fitted_on_names() -> None:
    """A LinearSVC fitted directly on label names maps onto the named columns (was an IndexError)."""
    frame = _frame(15, 8)
    vec = make_vectorizer()
    X = vec.fit_transform(frame["text"].tolist())
    model = LinearSVC().fit(X, frame["label"].to_numpy())
    columns = ["weather", "account", "billing", "shipping", "unseen"]
    scores = _full_scores(model, vec.transform(["rain and snow forecast"]), columns)
    assert scores.shape == (1, 5) and scores[0, 4] == -np.inf
    assert columns[int(scores[0].argmax())] == "weather"


def test_findings_are_plain_json_when_ids_are_integers() -> None:
    """int64 ids (row positions) and identical texts under two labels: every finding dumps to JSON."""
    frame = _frame(40, 9)
    frame["id"] = np.arange(len(frame), dtype=np.int64)
    frame.loc[0:5, "text"] = "refund or parcel, I do not know"
    frame.loc[0:2, "label"], frame.loc[3:5, "label"] = "billing", "shipping"
    frame, _ = _flip(frame, 8, seed=3)
    ctx = _ctx(frame)
    findings = label_overlap(ctx) + label_issue(ctx)
    assert any(getattr(f.evidence, "identical_text_conflicts", None) for f in findings)
    for f in findings:
        json.dumps(f.model_dump(mode="json"))
        assert all(type(r) is int for r in f.rows)


def test_classifier_survives_texts_without_shared_ngrams() -> None:
    """No word or character n-gram repeats (min_df=2 would prune everything): still fits and scores."""
    frame = pd.DataFrame({"id": range(6), "text": ["ab", "cd", "ef", "gh", "ij", "kl"],
                          "label": ["x", "y"] * 3})
    oof = out_of_fold(Dataset(path=Path("t.csv"), frame=frame), folds=2, seed=0)
    assert oof.probs.shape == (6, 2) and np.isfinite(oof.probs).all()
    # each row keeps n-grams of its own (min_df=1 fallback): the model fits its training rows
    assert TextClassifier().fit(frame["text"], frame["label"]).predict(frame["text"].tolist()) == ["x", "y"] * 3


def test_label_issue_threshold_comes_from_config() -> None:
    frame, _ = _flip(_frame(60, 1), 10, seed=2)

    def flagged(threshold: float) -> tuple[int, float]:
        config = AuditConfig.model_validate({"checks": {"label_issue_threshold": threshold}})
        ctx = AuditContext(train=Dataset(path=Path("train.csv"), frame=frame), config=config)
        summary = next(f for f in label_issue(ctx) if "flagged" in f.evidence)
        return summary.evidence["flagged"], summary.evidence["threshold"]

    strict, loose = flagged(0.999), flagged(0.6)
    assert strict[1] == 0.999 and loose[1] == 0.6
    assert loose[0] > strict[0]


def test_large_input_path_finds_flipped_labels() -> None:
    """The >LARGE_ROWS path (hashed features, SGD, 3 folds when the cap binds), forced on a small frame."""
    frame, flipped = _flip(_frame(80, 11), 12, seed=4)
    ds = Dataset(path=Path("t.csv"), frame=frame)
    oof = out_of_fold(ds, folds=5, seed=0, large_rows=100, max_train_rows=150)
    assert oof.fold.max() == 2 and any("hashed" in n for n in oof.notes)
    assert np.allclose(oof.probs.sum(axis=1), 1, atol=1e-4)
    ranked = set(frame["id"].iloc[detect_label_issues(oof).ranked()])
    assert len(ranked & flipped) >= 8 and len(ranked - flipped) <= 3
    model = TextClassifier(large=True).fit(frame["text"], frame["label"])
    assert model.predict(["the courier lost my parcel and the delivery"]) == ["shipping"]


def test_embedding_vote_enters_the_neighbour_signal_of_candidates_only() -> None:
    frame, flipped = _flip(_frame(40, 3), 8, seed=4)
    oof = out_of_fold(Dataset(path=Path("t.csv"), frame=frame), folds=5, seed=0)
    # vectors that put every row with the rows of its true topic: its original label before the flip
    true = frame["label"].copy()
    for i in np.flatnonzero(frame["id"].isin(flipped)):
        labels = sorted(TOPICS)
        true.iat[i] = labels[(labels.index(frame["label"].iat[i]) - 1) % len(labels)]
    centres = {lab: np.eye(8)[k] for k, lab in enumerate(sorted(TOPICS))}
    rng = np.random.default_rng(0)
    vecs = np.array([centres[t] + 0.05 * rng.normal(size=8) for t in true], dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    plain = detect_label_issues(oof, with_cleanlab=False)
    either = detect_label_issues(oof, with_cleanlab=False, embeddings=vecs, embedding_mode="either")
    both = detect_label_issues(oof, with_cleanlab=False, embeddings=vecs, embedding_mode="both")
    cand = np.flatnonzero((oof.given >= 0) & (plain.p_given < 0.5))
    assert either.p_embedding is not None and np.isnan(either.p_embedding[np.setdiff1d(np.arange(len(frame)), cand)]).all()
    assert (either.p_knn >= plain.p_knn - 1e-12).all() and (both.p_knn <= either.p_knn + 1e-12).all()
    wrong = cand[frame["id"].iloc[cand].isin(flipped).to_numpy() & (either.suggested[cand] == [
        oof.classes.index(true.iat[i]) for i in cand])]
    assert len(wrong) and (either.p_embedding[wrong] > 0.9).all()
