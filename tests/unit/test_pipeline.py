"""Reading an earlier run's findings (`--findings`), check selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit_agent.api import select_checks
from audit_agent.errors import ConfigError, InputError
from audit_agent.findings import Finding, Severity
from audit_agent.review.findings_file import read_findings


def test_findings_round_trip_through_findings_jsonl(tmp_path: Path) -> None:
    written = [Finding(check="label_overlap", severity=Severity.HIGH, message="refund vs billing", rows=[3, "t7"],
                       labels=["refund", "billing"]),
               Finding(check="judge_ambiguous", severity=Severity.LOW, message="unverified claim", source="judge",
                       verified=False)]
    path = tmp_path / "findings.jsonl"
    path.write_text("\n".join(f.model_dump_json() for f in written) + "\n\n")
    assert read_findings(path) == written


def test_a_bad_findings_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "findings.jsonl"
    path.write_text(Finding(check="input_rows", severity=Severity.INFO, message="m",
                            evidence={"problem": "empty_text", "count": 1, "file": "f.csv", "notes": []}
                            ).model_dump_json() + "\n{not json}\n")
    with pytest.raises(InputError, match="line 2: not a finding"):
        read_findings(path)
    with pytest.raises(InputError, match="findings file not found"):
        read_findings(tmp_path / "missing.jsonl")


def test_check_selection_validates_names() -> None:
    assert select_checks(["label_leak"], []) == ["label_leak"]
    everything = select_checks([], ["review_sample"])
    assert "review_sample" not in everything and "label_issue" in everything
    with pytest.raises(ConfigError, match="unknown check 'nope'"):
        select_checks(["nope"], [])
