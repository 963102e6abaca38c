"""The library API (`audit_agent.audit`) and the run-level rules it carries: DataFrames in, findings and
a per-row issue table out; a crashed check makes the run incomplete; a one-label file still runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import audit_agent
from audit_agent.api import audit
from audit_agent.checks import REGISTRY
from audit_agent.cli import app
from audit_agent.config import AuditConfig

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = ROOT / "fixtures" / "support"
PLANTED = json.loads((SUPPORT / "planted.json").read_text(encoding="utf-8"))


def test_audit_on_dataframes_matches_the_same_files() -> None:
    train = pd.read_csv(SUPPORT / "train.csv")
    from_frames = audit(train, pd.read_csv(SUPPORT / "eval.csv"), pd.read_csv(SUPPORT / "real.csv"), llm=False,
                        columns=audit_agent.Columns(id="id"))
    from_files = audit(SUPPORT / "train.csv", SUPPORT / "eval.csv", SUPPORT / "real.csv", llm=False,
                       columns=audit_agent.Columns(id="id"))
    key = ["check", "severity", "split", "n_rows"]
    assert from_frames.findings[key].values.tolist() == from_files.findings[key].values.tolist()
    assert from_frames.verdict == from_files.verdict == "fix first"


def test_findings_and_issue_tables_agree_with_the_findings() -> None:
    result = audit(SUPPORT / "train.csv", llm=False, columns=audit_agent.Columns(id="id"))
    findings, issues = result.findings, result.issues
    assert list(findings.columns[:6]) == ["id", "check", "severity", "split", "source", "verified"]
    assert len(issues) == len(pd.read_csv(SUPPORT / "train.csv")) and issues["id"].is_unique
    ran = [s.name for s in result.run.statuses if s.state == "ran"]
    for name in ran:
        assert {f"{name}_score", f"is_{name}_issue"} <= set(issues.columns)
    dup = findings[(findings["check"] == "exact_duplicate") & (findings["severity"] != "info")]
    flagged_rows = {r for rows in dup["rows"] for r in rows}
    assert set(issues.loc[issues["is_exact_duplicate_issue"], "id"]) == flagged_rows
    planted_dups = {p["id"] for p in PLANTED["exact_duplicate"]}
    assert planted_dups <= flagged_rows
    # label_issue rows carry the check's own score, not a flat severity score
    li = issues.loc[issues["is_label_issue_issue"], "label_issue_score"]
    assert len(li) and (li >= AuditConfig().checks.label_issue_threshold).all()


def test_a_crashed_check_makes_the_run_incomplete_exit_5(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(ctx: object) -> list[object]:
        raise RuntimeError("boom")

    monkeypatch.setattr(REGISTRY["template_frame"], "run", boom)
    out = tmp_path / "audit"
    res = CliRunner().invoke(app, ["run", str(SUPPORT / "train.csv"), "--no-llm", "--out", str(out)])
    assert res.exit_code == 5, res.output
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["verdict"] == "incomplete"
    assert {c["name"]: c["state"] for c in summary["checks"]}["template_frame"] == "failed"
    assert "**Verdict: INCOMPLETE.**" in (out / "report.md").read_text(encoding="utf-8")
    # --fail-on still applies to what ran, and wins over "incomplete"
    res = CliRunner().invoke(app, ["run", str(SUPPORT / "train.csv"), "--no-llm", "--out", str(out),
                                   "--fail-on", "high"])
    assert res.exit_code == 1, res.output


def test_a_one_label_file_runs_what_can_run(tmp_path: Path) -> None:
    rows = pd.read_csv(SUPPORT / "train.csv")
    one = rows[rows["label"] == rows["label"].iloc[0]]
    path = tmp_path / "one_intent.csv"
    one.to_csv(path, index=False)
    out = tmp_path / "audit"
    res = CliRunner().invoke(app, ["run", str(path), "--real", str(SUPPORT / "real.csv"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    states = {c["name"]: (c["state"], c["reason"]) for c in summary["checks"]}
    for name in ("label_issue", "label_overlap", "conflicting_labels", "label_leak"):
        assert states[name][0] == "skipped" and "two or more labels" in states[name][1], name
    for name in ("exact_duplicate", "near_duplicate", "repeated_opening", "template_frame", "coverage_gap",
                 "real_gap"):
        assert states[name][0] == "ran", name
    assert {j["job"] for j in summary["skipped_jobs"]} == {"judge", "guide", "paraphrase"}
    assert summary["judge"] is None
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "needs two or more labels" in report
