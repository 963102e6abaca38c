"""`--engine ray` on a local Ray cluster started by the test: the same findings as the in-process audit
for the exact checks, the same near duplicates, eval look-ups and label issues (at this size both
engines give identical rows; the tolerances are what the issue allows for approximate checks), and
the partitioned out-of-fold classifier gives the local large path's probabilities on Ray workers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from audit_agent.api import audit
from audit_agent.config import AuditConfig
from audit_agent.features.classifier import out_of_fold
from audit_agent.features.label_signals import detect_label_issues
from audit_agent.report.outputs import write_outputs
from tests.engine_data import make_rows

pytest.importorskip("ray")

EXACT = ("exact_duplicate", "repeated_opening", "repeated_ending", "class_balance", "input_rows")
NEAR_JACCARD = 0.98  # near_duplicate / conflicting_labels / contamination rows
LABEL_ISSUE_JACCARD = 0.9


def _findings(folder: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for line in (folder / "findings.jsonl").read_text(encoding="utf-8").splitlines():
        f = json.loads(line)
        out.setdefault(f["check"], []).append(f)
    return out


def _rows(findings: list[dict[str, Any]]) -> set[str]:
    rows: set[str] = set()
    for f in findings:
        drop = f["evidence"].get("drop")
        rows.update(str(r) for r in (drop if isinstance(drop, list) else f["rows"]))
    return rows


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


@pytest.mark.slow
def test_ray_engine_gives_the_local_findings(tmp_path: Path) -> None:
    from audit_agent.engine.ray_engine import RayEngine
    from audit_agent.engine.run import EngineData, load_partitioned, run_audit_engine

    train, evalf = tmp_path / "train.csv", tmp_path / "eval.csv"
    rows = make_rows(3000, seed=5)
    rows.iloc[[7, 300, 2500], 0] = ["", "  ", ""]  # empty texts: an input_rows finding on both paths
    rows.to_csv(train, index=False)
    ev = make_rows(200, seed=6)
    ev.loc[:29, "text"] = rows["text"].iloc[100:130].to_numpy()
    ev.to_csv(evalf, index=False)
    base = AuditConfig()
    ray_cfg = AuditConfig.model_validate({"engine": {"kind": "ray", "num_cpus": 2, "object_store_mb": 256,
                                                     "rows_per_partition": 1000}})
    engine = RayEngine(ray_cfg.engine)
    try:
        # the partitioned classifier on Ray workers == the local large path (forced at this size)
        ctx, _, n_parts = load_partitioned(engine, EngineData(train), ray_cfg, large_rows=0)
        assert n_parts == 3
        local = out_of_fold(ctx.train, folds=5, seed=0, large_rows=0)
        mine, theirs = ctx.features.label_issues(0.99), detect_label_issues(local, threshold=0.99)
        assert np.array_equal(ctx.features.oof.predicted, local.predicted)
        assert np.allclose(mine.p_given, theirs.p_given, atol=1e-6)
        assert np.array_equal(mine.flagged, theirs.flagged)
        # the whole audit, both engines
        audit(train, evalf, llm=False, config=base).write(tmp_path / "local")
        result = run_audit_engine(EngineData(train, eval=evalf), ray_cfg, llm=False, engine=engine)
        write_outputs(result, tmp_path / "ray", streamed=True)
    finally:
        engine.close()
    local_f, ray_f = _findings(tmp_path / "local"), _findings(tmp_path / "ray")
    for check in EXACT:
        assert local_f.get(check), check
        assert ray_f.get(check) == local_f[check], check
    for check in ("near_duplicate", "conflicting_labels", "contamination"):
        assert local_f.get(check), check
        assert _jaccard(_rows(local_f[check]), _rows(ray_f.get(check, []))) >= NEAR_JACCARD, check
    assert _jaccard(_rows(local_f["label_issue"]), _rows(ray_f.get("label_issue", []))) >= LABEL_ISSUE_JACCARD
    engine_note = ray_f["engine"][0]["evidence"]
    assert engine_note["engine"] == "ray" and engine_note["partitions"] == 3 and engine_note["checks_on_sample"] == []
    assert (tmp_path / "ray" / "deduplicated.csv").read_bytes() == (tmp_path / "local" / "deduplicated.csv").read_bytes()
    assert pd.read_csv(tmp_path / "ray" / "review_sample.csv").equals(pd.read_csv(tmp_path / "local" / "review_sample.csv"))
    assert result.verdict in ("fix first", "ready to tune")
