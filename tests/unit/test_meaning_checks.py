"""The meaning-level checks through the library API with the real embedding model (small fixtures):
paraphrase conflicts the lexical check cannot see, real rows uncovered in meaning, the encoder pilot,
semantic duplicates kept unless asked; and the skip reasons when embeddings are off."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from audit_agent.api import audit

ROOT = Path(__file__).resolve().parents[2]
ROWS = ROOT / "fixtures" / "paraphrase_conflicts" / "rows.csv"

pytest.importorskip("sentence_transformers", reason="needs the embed extra")


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return pd.read_csv(ROWS, dtype=str, keep_default_na=False)


def _config(tmp_path: Path, **embeddings: object) -> dict[str, object]:
    return {"llm": {"cache_dir": str(tmp_path / "cache")}, "embeddings": {"enabled": "on", **embeddings}}


def test_paraphrase_conflicts_are_found_where_words_differ(rows: pd.DataFrame, tmp_path: Path) -> None:
    result = audit(rows[["id", "text", "label"]], llm=False, config=_config(tmp_path),
                   checks=["paraphrase_conflict", "conflicting_labels"])
    found = result.run.by_check("paraphrase_conflict")
    planted = {(r.id, r.planted_conflict_with) for r in rows.itertuples() if r.planted_conflict_with}
    named = [{str(p.a), str(p.b)} for f in found for p in f.evidence["pairs"]]
    hits = [pair for pair in planted if set(pair) in named]
    assert len(hits) >= len(planted) - 1, (planted, named)
    shown = [p for f in found for p in f.evidence["pairs"]]
    assert all(p.p_other is not None and p.p_other >= 0.02 for p in shown), "the out-of-fold classifier gated them"
    lexical = {frozenset(map(str, f.rows)) for f in result.run.by_check("conflicting_labels")}
    assert not any(frozenset(p) <= rows_ for p in planted for rows_ in lexical), "words alone miss them"
    # only the rows out of place are label suspects (and issues); their agreeing neighbours are not
    issues = result.issues.set_index("id")
    flagged = set(issues.index[issues["is_paraphrase_conflict_issue"]].astype(str))
    assert flagged == {str(p.a) for p in shown}
    assert any(str(r) not in flagged for f in found for r in f.rows)
    # the row out of place carries the highest per-row score, and its label pair reaches the guide job
    issues = result.issues.set_index("id")
    for wrong, _ in hits:
        assert issues.at[wrong, "paraphrase_conflict_score"] == 1.0
    from audit_agent.jobs.guide_select import colliding_pairs

    pairs = colliding_pairs(result.run.findings, sorted(set(rows["label"])))
    assert pairs and all(kinds == ["paraphrase_conflict"] for kinds in pairs.values())


def test_meaning_gap_and_encoder_pilot_with_a_real_batch(rows: pd.DataFrame, tmp_path: Path) -> None:
    train = rows[["id", "text", "label"]]
    real = pd.DataFrame({"text": ["kid clicked buy by mistake can i get money back", "refund pls",
                                  "my package was delivered to the wrong house", "where is my parcel",
                                  "the app crashes when I open settings", "screen goes black after update",
                                  "cant login code expired"] * 2,
                         "label": ["refund_request", "refund_request", "other", "other", "other", "other",
                                   "login_problem"] * 2})
    result = audit(train, real=real, llm=False, config=_config(tmp_path), checks=["meaning_gap", "pilot_gap"])
    summary = next(f for f in result.run.by_check("meaning_gap") if f.evidence.summary)
    assert summary.evidence["real_rows"] == len(real) and 0 < summary.evidence["uncovered"] <= len(real)
    uncovered = {str(r) for f in result.run.by_check("meaning_gap") if not f.evidence.summary for r in f.rows}
    crash_rows = {str(i) for i, t in enumerate(real["text"]) if "crash" in t or "black" in t}
    assert crash_rows <= uncovered, "rows about a topic the training set never mentions are uncovered"
    (pilot,) = result.run.by_check("pilot_gap")
    encoder = pilot.evidence["encoder"]
    assert encoder is not None and {"held_out", "real"} <= set(encoder.sets)
    assert encoder.sets["real"].n == int(real["label"].isin(set(train["label"])).sum())


def test_semantic_duplicates_leave_the_copy_only_when_asked(rows: pd.DataFrame, tmp_path: Path) -> None:
    doubled = pd.concat([rows, rows.assign(id=rows["id"] + "b", text=rows["text"] + " please")], ignore_index=True)
    train = doubled[["id", "text", "label"]]
    kept = audit(train, llm=False, config=_config(tmp_path), checks=["semantic_duplicate"])
    assert kept.run.by_check("semantic_duplicate")
    paths = kept.write(tmp_path / "kept")
    assert "deduplicated" not in paths
    dropped = audit(train, llm=False, config=_config(tmp_path, semantic_dedup=True), checks=["semantic_duplicate"])
    paths = dropped.write(tmp_path / "dropped")
    copy = pd.read_csv(paths["deduplicated"], dtype=str, keep_default_na=False) if "deduplicated" in paths else None
    assert copy is not None and len(copy) < len(train)


def test_without_embeddings_the_report_says_which_checks_ran_without_meaning(rows: pd.DataFrame,
                                                                             tmp_path: Path) -> None:
    result = audit(rows[["id", "text", "label"]], llm=False,
                   config={"embeddings": {"enabled": "off"}}, checks=["paraphrase_conflict", "semantic_duplicate"])
    states = {s.name: (s.state, s.reason) for s in result.run.statuses}
    for name in ("paraphrase_conflict", "semantic_duplicate"):
        assert states[name][0] == "skipped" and "embeddings are off" in states[name][1]
    report = result.write(tmp_path / "out")["report"].read_text(encoding="utf-8")
    assert "needs meaning-level signals: embeddings are off" in report
