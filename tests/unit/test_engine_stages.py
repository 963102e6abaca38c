"""The partitioned stages (run in-process by LocalEngine) give what the local path computes: the same
rows, exact groups, near pairs, eval look-ups, out-of-fold probabilities, label issues, openings,
endings and deduplicated file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from audit_agent.checks import REGISTRY
from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.engine import phrasing
from audit_agent.engine.base import LocalEngine
from audit_agent.engine.reader import open_split
from audit_agent.engine.run import EngineData, load_partitioned
from audit_agent.features.classifier import out_of_fold
from audit_agent.features.label_signals import detect_label_issues
from audit_agent.features.neighbors import NeighborIndex
from audit_agent.features.text import normalize
from audit_agent.io.loader import load_dataset
from audit_agent.report.deduplicated import write_deduplicated, write_deduplicated_parts
from tests.engine_data import make_rows

repeated_ending = REGISTRY["repeated_ending"].run
repeated_opening = REGISTRY["repeated_opening"].run


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("engine")
    train = folder / "train.csv"
    make_rows(2500, seed=1).to_csv(train, index=False)
    evalf = folder / "eval.csv"
    ev = make_rows(300, seed=2)
    ev.loc[:40, "text"] = pd.read_csv(train)["text"].iloc[:41].to_numpy()  # contamination
    ev.to_csv(evalf, index=False)
    return train, evalf


@pytest.fixture(scope="module")
def engine_run(data: tuple[Path, Path]) -> tuple[AuditContext, Any]:
    """The stages in-process on the test data (with the eval split), the classifier on the driver."""
    return _engine_run(*data)


def _engine_run(train: Path, evalf: Path | None, large_rows: int = 30_000) -> tuple[AuditContext, Any]:
    config = AuditConfig.model_validate({"engine": {"rows_per_partition": 700}})
    ctx, results, n_parts = load_partitioned(LocalEngine(), EngineData(train, eval=evalf), config,
                                             large_rows=large_rows)
    assert n_parts == 4
    return ctx, results


def test_reader_gives_the_loader_rows_with_bad_rows_listed(tmp_path: Path) -> None:
    frame = make_rows(1000, seed=3, with_ids=True)
    frame.loc[10, "text"] = " "
    frame.loc[20, "label"] = None
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    local = load_dataset(path)
    reader = open_split(path)
    parts = list(reader.partitions(300))
    assert len(parts) == 4
    engine_frame = pd.concat(parts, ignore_index=True)
    assert engine_frame["id"].tolist() == local.frame["id"].tolist()
    assert engine_frame["text"].tolist() == local.frame["text"].tolist()
    assert engine_frame["label"].tolist() == local.frame["label"].tolist()
    assert reader.bad_rows == local.bad_rows
    assert reader.kind(None) == local.kind


def test_near_pairs_and_eval_lookups_match_the_neighbor_index(engine_run: tuple[AuditContext, Any]) -> None:
    ctx, _ = engine_run
    engine_nb = ctx.features.neighbors
    normalized = [normalize(t) for t in ctx.train.texts]
    local = NeighborIndex.build(normalized, threshold=0.8, num_perm=128, seed=0)
    assert np.array_equal(engine_nb.codes, local.codes)
    assert np.array_equal(engine_nb.first_position, local.first_position)
    local_pairs = {(int(u), int(v)) for u, v in local.unique_pairs.T}
    engine_pairs = {(int(u), int(v)) for u, v in engine_nb.unique_pairs.T}
    assert len(local_pairs) > 50
    assert engine_pairs == local_pairs
    sims = dict(zip(map(tuple, engine_nb.unique_pairs.T.tolist()), engine_nb.unique_similarity.tolist(), strict=True))
    for (u, v), s in zip(local.unique_pairs.T.tolist(), local.unique_similarity.tolist(), strict=True):
        assert sims[(u, v)] == pytest.approx(s, abs=1e-9)
    assert ctx.eval is not None
    other = [normalize(t) for t in ctx.eval.texts]
    engine_found, local_found = engine_nb.query(other), local.query(other)
    for mine, theirs in zip(engine_found, local_found, strict=True):  # ties differ only in float rounding
        assert dict(mine) == {p: pytest.approx(s, abs=1e-9) for p, s in theirs}
        assert not mine or mine[0][1] == pytest.approx(theirs[0][1], abs=1e-9)
    assert sum(1 for found in engine_found if found) >= 41


def test_partitioned_out_of_fold_and_label_issues_match_the_local_large_path(data: tuple[Path, Path]) -> None:
    train, _ = data
    ctx, _ = _engine_run(train, None, large_rows=0)
    local = out_of_fold(ctx.train, folds=5, seed=0, large_rows=0)
    oof = ctx.features.oof
    assert oof.temperature == local.temperature
    assert np.array_equal(oof.fold, local.fold)
    assert np.array_equal(oof.predicted, local.predicted)
    local_issues = detect_label_issues(local, threshold=0.99)
    engine_issues = ctx.features.label_issues(0.99)
    assert np.allclose(engine_issues.p_given, local_issues.p_given, atol=1e-6)
    assert np.array_equal(engine_issues.suggested, local_issues.suggested)
    assert np.allclose(engine_issues.p_knn, local_issues.p_knn, atol=1e-6)
    assert np.array_equal(engine_issues.flagged, local_issues.flagged)
    assert np.array_equal(engine_issues.cleanlab, local_issues.cleanlab)
    assert engine_issues.flagged.sum() > 0


def test_openings_and_endings_from_engine_keys_match_the_checks(data: tuple[Path, Path],
                                                               engine_run: tuple[AuditContext, Any]) -> None:
    train, _ = data
    ctx, results = engine_run
    local_ctx = AuditContext(train=load_dataset(train), config=ctx.config)
    opening = phrasing.repeated_opening(ctx, results.opening)
    ending = phrasing.repeated_ending(ctx, results.ending)
    assert opening and ending
    assert [f.model_dump() for f in opening] == [f.model_dump() for f in repeated_opening(local_ctx)]
    assert [f.model_dump() for f in ending] == [f.model_dump() for f in repeated_ending(local_ctx)]


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_deduplicated_file_written_in_chunks_matches_the_local_writer(tmp_path: Path, suffix: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    frame = make_rows(900, seed=4, with_ids=suffix != "csv")
    path = tmp_path / f"t.{suffix}"
    if suffix == "csv":
        frame.to_csv(path, index=False)
    elif suffix == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path, index=False)
    ds = load_dataset(path)
    drop = [str(i) for i in ds.frame["id"].iloc[::7]]
    monkeypatch.setattr("audit_agent.report.deduplicated.CHUNK_ROWS", 200)
    engine_path, engine_out = write_deduplicated_parts(ds, drop, tmp_path / "engine")
    local_path, local_out = write_deduplicated(ds, drop, tmp_path / "local")
    assert engine_out == local_out == len(drop)
    if suffix == "parquet":
        assert pd.read_parquet(engine_path).equals(pd.read_parquet(local_path))
    else:
        assert engine_path.read_bytes() == local_path.read_bytes()


def test_checks_that_need_every_text_run_on_a_stated_sample(data: tuple[Path, Path], tmp_path: Path) -> None:
    from audit_agent.engine.run import run_audit_engine
    from audit_agent.report.outputs import write_outputs

    train, _ = data
    config = AuditConfig.model_validate({"engine": {"rows_per_partition": 700, "sample_rows": 1000}})
    result = run_audit_engine(EngineData(train), config, llm=False,
                              checks=["exact_duplicate", "template_frame", "class_balance"], engine=LocalEngine())
    write_outputs(result, tmp_path / "out", streamed=True)
    note = result.by_check("engine")[0]
    assert note.evidence["checks_on_sample"] == ["template_frame"]
    assert note.evidence["sample_rows"] == 1000 and note.evidence["rows"] == 2500
    assert "uniform sample of 1,000 of the 2,500 rows: template_frame" in note.message
    assert {s.name: s.state for s in result.statuses} == {"class_balance": "ran", "exact_duplicate": "ran",
                                                          "template_frame": "ran", "engine": "ran"}
    frame_rows = {r for f in result.by_check("template_frame") for r in f.rows}
    local_ctx = AuditContext(train=load_dataset(train), config=config)
    exact_duplicate = REGISTRY["exact_duplicate"].run
    assert sorted(f.model_dump_json() for f in result.by_check("exact_duplicate")) == sorted(
        f.model_dump_json() for f in exact_duplicate(local_ctx))
    assert frame_rows  # found on the sample, with row ids of the whole file
    assert frame_rows <= set(map(str, local_ctx.train.frame["id"])) | set(local_ctx.train.frame["id"])
    assert (tmp_path / "out" / "report.md").read_text().count("uniform sample of 1,000") == 1


def test_unknown_engine_is_a_config_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from audit_agent.cli import app

    path = tmp_path / "t.csv"
    make_rows(50).to_csv(path, index=False)
    res = CliRunner().invoke(app, ["run", str(path), "--no-llm", "--engine", "spark", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "engine.kind" in res.output


def test_judge_runs_after_the_engine_on_the_sample_with_its_suspects(data: tuple[Path, Path], tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from audit_agent.config import load_config
    from audit_agent.engine.run import run_audit_engine
    from audit_agent.report.outputs import write_outputs
    from audit_agent.report.trace_file import TraceFile
    from audit_agent.run_options import LLMJobs
    from tests.faultserver import FaultServer, write_config

    train, _ = data
    monkeypatch.setenv("FAKE_KEY", "sk-test")
    with FaultServer() as server:
        path = write_config(tmp_path / "c.yaml", server, cache_dir=tmp_path / "cache", model="openai/fault")
        with path.open("a", encoding="utf-8") as fh:
            fh.write("engine:\n  rows_per_partition: 700\n  sample_rows: 1000\n")
        config = load_config(path, {"llm.budget.max_calls": 12})
        (tmp_path / "out").mkdir()
        with TraceFile(tmp_path / "out" / "trace.jsonl") as trace:
            result = run_audit_engine(EngineData(train), config, checks=["label_issue", "conflicting_labels"],
                                      jobs=LLMJobs(rewrite_guide=False, paraphrase_rows=0), trace_sink=trace,
                                      engine=LocalEngine())
        write_outputs(result, tmp_path / "out", streamed=True)
    assert result.judge is not None and result.judge.rows_judged > 0
    suspects = {str(r) for f in result.by_check("conflicting_labels") for r in f.rows}
    judged = {json.loads(line).get("row_id") for line in (tmp_path / "out" / "trace.jsonl").read_text().splitlines()}
    assert suspects & {str(j) for j in judged if j is not None}
    assert (tmp_path / "out" / "report.md").exists()
