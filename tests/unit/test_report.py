"""The report layer: every output file, written atomically, showing only what the RunResult holds."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from audit_agent.checks.balance import Frequencies
from audit_agent.checks.duplicates import ExactGroup, NearGroup
from audit_agent.checks.review import ReviewSampleEvidence
from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.findings import Finding, Severity
from audit_agent.io.loader import load_dataset
from audit_agent.report import outputs
from audit_agent.report.markdown import ROWS_PER_CHECK_TABLE, escape, render_report
from audit_agent.run_result import CheckStatus, JudgeSummary, RunResult
from tests.fakes import evidence

ROOT = Path(__file__).resolve().parents[2]
ROWS = [
    ("a1", "My parcel is late | where is it?", "shipping_delay", "gen"),
    ("a2", "My parcel is late | where is it?", "shipping_delay", "gen"),
    ("a3", "I want a refund for the broken lamp.", "refund_request", "gen"),
    ("a4", "i want a refund for the broken lamp", "refund_request", "gen"),
    ("a5", "Please cancel my plan\nbefore it renews.", "cancel_subscription", "gen"),
    ("a6", "Why was I charged twice?", "billing_issue", "hand"),
    ("a7", "I cannot log in.", "login_problem", "hand"),
    ("a8", "Someone logged into my account.", "account_compromised", "hand"),
]


def _write_csv(path: Path) -> Path:
    pd.DataFrame(ROWS, columns=["id", "text", "label", "source"]).to_csv(path, index=False)
    return path


def _findings() -> list[Finding]:
    return [
        Finding(check="exact_duplicate", severity=Severity.HIGH, rows=["a1", "a2"],
                message="2 rows have the same text: \"My parcel is late | where is it?\"",
                evidence=evidence(ExactGroup, size=2, keep=["a1"], drop=["a2"])),
        Finding(check="near_duplicate", severity=Severity.LOW, rows=["a3", "a4"],
                message="2 rows are near-identical", evidence=evidence(NearGroup, keep=["a3"], drop=["a4"])),
        Finding(check="class_balance", severity=Severity.MEDIUM, labels=["account_compromised"],
                message="6 labels; smallest 'account_compromised' has 1 row",
                evidence=evidence(Frequencies, kind="label_counts", counts={
                    "shipping_delay": 2, "refund_request": 2, "cancel_subscription": 1, "billing_issue": 1,
                    "login_problem": 1, "account_compromised": 1})),
        Finding(check="review_sample", severity=Severity.INFO, rows=["a5", "a1", "a3"],
                message="3 rows sampled for a person to label",
                evidence=evidence(ReviewSampleEvidence, row_ids=["a5", "a1", "a3"],
                                  reviewer_columns=["reviewer_label", "notes"])),
        Finding(check="judge_contradicted", severity=Severity.HIGH, rows=["a6", "a5"], source="judge",
                verified=False, message="the judge thinks row a6 is a refund_request, not billing_issue"),
    ]


def _result(tmp_path: Path, findings: list[Finding] | None = None, judge: bool = True,
            crashed: bool = True) -> RunResult:
    train = load_dataset(_write_csv(tmp_path / "train.csv"), id_col="id")
    ctx = AuditContext(train=train, config=AuditConfig())
    statuses = [
        CheckStatus("exact_duplicate", "ran", findings=1, seconds=0.25),
        CheckStatus("near_duplicate", "ran", findings=1, seconds=0.5),
        CheckStatus("class_balance", "ran", findings=1, seconds=0.01),
        CheckStatus("review_sample", "ran", findings=1, seconds=0.02),
        CheckStatus("repeated_opening", "ran", findings=0, seconds=0.03),
        CheckStatus("coverage_gap", "skipped", reason="needs --real"),
        CheckStatus("template_frame", "failed", seconds=0.1, reason="ValueError: boom | bad") if crashed else
        CheckStatus("template_frame", "ran", seconds=0.1),
    ]
    summary = JudgeSummary(model="fake/model", where_data_went="nowhere: a fake model in this process",
                           rows_judged=4, verdicts={"ok": 3, "wrong_label": 1}, verified=0, unverified=1, self_contradictory=2,
                           agreement_with_checks=0.75, calls=4, cached_calls=1, prompt_tokens=900,
                           completion_tokens=80, stop_reason="sample exhausted") if judge else None
    return RunResult(ctx=ctx, findings=findings if findings is not None else _findings(), statuses=statuses,
                     seconds=1.5, judge=summary)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, dict[str, Path], Path]:
    tmp_path = tmp_path_factory.mktemp("report")
    result = _result(tmp_path)
    out = tmp_path / "audit"
    return result, outputs.write_outputs(result, out), out


def test_all_files_written(written: tuple[RunResult, dict[str, Path], Path]) -> None:
    _, paths, out = written
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["findings.jsonl", "summary.json", "review_sample.csv", "deduplicated.csv", "rows.parquet", "review.html",
                            "report.md", "label_counts.png", "lengths.png"])
    assert {k: p.name for k, p in paths.items()}["deduplicated"] == "deduplicated.csv"
    for png in ("label_counts.png", "lengths.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_findings_jsonl_round_trips(written: tuple[RunResult, dict[str, Path], Path]) -> None:
    result, paths, _ = written
    lines = paths["findings"].read_text(encoding="utf-8").splitlines()
    back = [Finding.model_validate(json.loads(line)) for line in lines]
    assert back == result.findings
    assert set(json.loads(lines[0])) == {"id", "check", "severity", "rows", "labels", "message", "evidence",
                                         "source", "verified", "split"}


def test_summary_counts_match(written: tuple[RunResult, dict[str, Path], Path]) -> None:
    result, paths, _ = written
    summary = json.loads(paths["summary"].read_text(encoding="utf-8"))
    assert summary["verdict"] == "incomplete"  # template_frame crashed
    assert summary["counts"]["by_severity"] == {"high": 2, "medium": 1, "low": 1, "info": 1}
    assert summary["counts"]["by_check"] == {"class_balance": 1, "exact_duplicate": 1, "judge_contradicted": 1,
                                             "near_duplicate": 1, "review_sample": 1}
    assert (summary["counts"]["verified"], summary["counts"]["unverified"]) == (4, 1)
    assert summary["dataset"]["train"]["rows"] == 8 and summary["dataset"]["train"]["labels"] == 6
    assert summary["dataset"]["train"]["columns"] == {"text": "text", "label": "label", "id": "id"}
    assert summary["dataset"]["eval"] is None
    assert [c["name"] for c in summary["checks"]] == [s.name for s in result.statuses]
    assert summary["checks"][1]["seconds"] == 0.5
    assert summary["judge"]["calls"] == 4 and summary["judge"]["unverified"] == 1
    assert summary["versions"]["pandas"] == pd.__version__ and summary["versions"]["python"]
    assert summary["deduplicated_rows_dropped"] == 2


def test_report_shows_verdict_ids_and_unverified(written: tuple[RunResult, dict[str, Path], Path]) -> None:
    result, paths, _ = written
    report = paths["report"].read_text(encoding="utf-8")
    assert report.startswith("# Data audit: train.csv")
    assert "**Verdict: INCOMPLETE.** 1 check(s) crashed (`template_frame`)" in report
    assert "fix or skip them and run again." in report
    for f in result.findings:
        assert f.id in report
    judge_id = result.by_check("judge_contradicted")[0].id
    judge_lines = [line for line in report.splitlines() if judge_id in line]
    assert judge_lines and all("unverified" in line for line in judge_lines)
    assert "Skipped: needs --real." in report
    assert "Nothing found." in report
    assert "**Failed**" in report
    assert "![Rows per label](label_counts.png)" in report
    assert "deduplicated.csv" in report
    assert "Model: `fake/model`" in report and "Agreement with the checks: 75%" in report
    assert "Self-contradictory replies: 2" in report


def test_report_tables_escape_row_text(written: tuple[RunResult, dict[str, Path], Path]) -> None:
    _, paths, _ = written
    report = paths["report"].read_text(encoding="utf-8")
    assert "late \\| where" in report and "late | where" not in report
    for line in report.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            assert line.count("|") - line.count("\\|") == 5 or line.count("|") - line.count("\\|") == 6
    assert "cancel my plan before it renews" in report
    assert escape("a|b\nc `d`") == "a\\|b c \\`d\\`"


def test_unverified_high_does_not_decide_verdict(tmp_path: Path) -> None:
    only_judge = [f for f in _findings() if f.source == "judge"]
    report = render_report(_result(tmp_path, only_judge, crashed=False))
    assert "**Verdict: READY TO TUNE.**" in report
    assert "**Verdict: FIX FIRST.**" in render_report(_result(tmp_path, crashed=False))
    assert "1 high-severity claim(s) are unverified" in report


def test_no_findings_report(tmp_path: Path) -> None:
    result = _result(tmp_path, [], judge=False)
    paths = outputs.write_outputs(result, tmp_path / "out")
    assert "deduplicated" not in paths and "review_sample" not in paths
    report = paths["report"].read_text(encoding="utf-8")
    assert "No high or medium severity findings." in report and "## Judge" not in report


def test_deduplicated_drops_exactly_the_drop_ids(written: tuple[RunResult, dict[str, Path], Path]) -> None:
    _, paths, _ = written
    dedup = pd.read_csv(paths["deduplicated"], dtype=str, keep_default_na=False)
    assert list(dedup.columns) == ["id", "text", "label", "source"]
    assert dedup["id"].tolist() == ["a1", "a3", "a5", "a6", "a7", "a8"]
    assert dedup.loc[dedup["id"] == "a5", "text"].item() == ROWS[4][1]


def test_deduplicated_chat_keeps_original_records(tmp_path: Path) -> None:
    records = [{"messages": [{"role": "user", "content": f"question {i % 3}"},
                             {"role": "assistant", "content": f"answer {i % 3}"}], "meta": i} for i in range(5)]
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    train = load_dataset(path)
    dup = Finding(check="exact_duplicate", severity=Severity.MEDIUM, rows=[0, 3], message="dup",
                  evidence=evidence(ExactGroup, drop=[3]))
    result = RunResult(ctx=AuditContext(train=train, config=AuditConfig()), findings=[dup], statuses=[],
                       seconds=0.1)
    paths = outputs.write_outputs(result, tmp_path / "out")
    assert paths["deduplicated"].name == "deduplicated.jsonl"
    kept = [json.loads(line) for line in paths["deduplicated"].read_text(encoding="utf-8").splitlines()]
    assert kept == [records[i] for i in (0, 1, 2, 4)]


def test_review_sample_columns_and_order(written: tuple[RunResult, dict[str, Path], Path]) -> None:
    _, paths, _ = written
    sample = pd.read_csv(paths["review_sample"], dtype=str, keep_default_na=False)
    assert list(sample.columns) == ["id", "text", "label", "reviewer_label", "notes"]
    assert sample["id"].tolist() == ["a5", "a1", "a3"]
    assert sample["label"].tolist() == ["cancel_subscription", "shipping_delay", "refund_request"]
    assert (sample[["reviewer_label", "notes"]] == "").all().all()


def test_writer_exception_leaves_no_half_written_file(written: tuple[RunResult, dict[str, Path], Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    result, paths, out = written
    before = paths["findings"].read_bytes()
    calls = {"n": 0}
    real_record = outputs.finding_record

    def failing(f: Finding) -> dict:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk on fire")
        return real_record(f)

    monkeypatch.setattr(outputs, "finding_record", failing)
    with pytest.raises(RuntimeError):
        outputs.write_outputs(result, out)
    assert paths["findings"].read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    fresh = out.parent / "fresh"
    calls["n"] = 0
    with pytest.raises(RuntimeError):
        outputs.write_outputs(result, fresh)
    assert list(fresh.iterdir()) == []


def _fixture_result(names: list[str]) -> RunResult:
    from audit_agent.api import Columns, load_context, run_checks
    from audit_agent.findings import sort_findings

    support = ROOT / "fixtures" / "support"
    ctx = load_context(support / "train.csv", support / "eval.csv", support / "real.csv", guide=support / "guide.md",
                       config=AuditConfig(), columns=Columns(id="id"))
    findings, statuses = run_checks(ctx, names)
    return RunResult(ctx=ctx, findings=sort_findings(findings), statuses=statuses, seconds=0.0)


def _check_fixture_outputs(result: RunResult, out: Path) -> str:
    paths = outputs.write_outputs(result, out)
    report = paths["report"].read_text(encoding="utf-8")
    assert "**Verdict: FIX FIRST.**" in report
    for f in result.findings:
        if f.severity is Severity.HIGH:
            assert f.id in report
    for status in result.statuses:
        found = result.by_check(status.name)
        shown = sum(f.id in report for f in found)
        assert shown == min(len(found), ROWS_PER_CHECK_TABLE), status.name
        if len(found) > ROWS_PER_CHECK_TABLE:
            assert f"... and {len(found) - ROWS_PER_CHECK_TABLE} more finding(s)" in report
    planted = json.loads((ROOT / "fixtures" / "support" / "planted.json").read_text(encoding="utf-8"))
    kept = set(pd.read_csv(paths["deduplicated"], dtype=str)["id"])
    for pair in planted["exact_duplicate"]:
        assert (pair["id"] in kept) != (pair["of"] in kept), pair
    review = result.by_check("review_sample")[0]
    sample = pd.read_csv(paths["review_sample"], dtype=str, keep_default_na=False)
    assert list(sample.columns) == ["id", "text", "label", *review.evidence.reviewer_columns]
    assert len(sample) == len(review.evidence.row_ids)
    return report


def test_report_on_the_example_dataset(tmp_path: Path) -> None:
    names = ["class_balance", "exact_duplicate", "near_duplicate", "conflicting_labels", "repeated_opening",
             "review_sample", "coverage_gap"]
    result = _fixture_result(names)
    report = _check_fixture_outputs(result, tmp_path)
    assert "### conflicting_labels" in report and "Nothing found." not in report.split("### exact_duplicate")[1][:400]


@pytest.mark.slow
def test_report_on_the_example_dataset_all_checks(tmp_path: Path) -> None:
    from audit_agent.checks import REGISTRY

    result = _fixture_result(sorted(REGISTRY))
    assert not [s for s in result.statuses if s.state == "failed"]
    _check_fixture_outputs(result, tmp_path)


def test_a_check_that_read_a_sample_says_so_once(tmp_path: Path) -> None:
    from audit_agent.checks.meaning import SemanticDuplicateEvidence

    note = "train: meaning-level signals read a stratified sample of 4 of 8 rows (embeddings.max_rows = 4)"
    groups = [Finding(check="semantic_duplicate", severity=Severity.LOW, rows=[a, b], message=f"{a} and {b} say the same",
                      evidence=evidence(SemanticDuplicateEvidence, label="refund_request", keep=a, drop=[b],
                                        similarity_min=0.97, dropped_from_copy=False, sampled_note=note))
              for a, b in (("a3", "a4"), ("a1", "a2"))]
    result = _result(tmp_path, groups, judge=False, crashed=False)
    result.statuses.append(CheckStatus("semantic_duplicate", "ran", findings=2, seconds=0.1))
    report = render_report(result)
    section = report.split("### semantic_duplicate", 1)[1].split("###", 1)[0]
    assert section.count(f"Scope: {escape(note)}.") == 1
    assert "Scope:" not in report.split("### semantic_duplicate", 1)[0]
