"""`diff`: findings matched by id, anchor, rows and only-one; rows added/removed/relabelled by id and by
text; older audit folders without summary facts or rows.parquet read defensively."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from audit_agent.cli import app
from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.errors import InputError
from audit_agent.findings import Finding, Severity
from audit_agent.report.review_outputs import write_row_fingerprints
from audit_agent.review.diff import diff_audits, diff_rows, read_audit
from audit_agent.review.finding_match import match_findings
from audit_agent.review.run_facts import ROWS_FILE, RunFacts, run_facts, text_hash
from audit_agent.run_result import RunResult
from tests.fakes import evidence_of


def finding(check: str, rows: list[str], message: str, severity: Severity = Severity.MEDIUM, **evidence: object
            ) -> Finding:
    return Finding(check=check, severity=severity, rows=list(rows), message=message,
                   evidence=evidence_of(check, **evidence) if evidence else {})


def test_findings_are_matched_by_id_anchor_rows_and_only_one() -> None:
    old = [
        finding("exact_duplicate", ["a", "b"], "2 rows have the same text: x"),
        finding("exact_duplicate", ["c", "d"], "2 rows have the same text: y"),
        finding("near_duplicate", ["e", "f", "g"], "3 near-identical rows"),
        finding("label_leak", ["a", "c", "e"], "3 rows contain 'kindly' (90%)", phrase="kindly", kind="style"),
        finding("pilot_gap", [], "gap +0.20", Severity.HIGH, gap=0.2),
        finding("coverage_gap", [], "typos rare", kind="bucket", bucket="typos"),
        finding("coverage_gap", [], "short rare", kind="bucket", bucket="very_short"),
    ]
    new = [
        old[0],  # unchanged: same id
        finding("near_duplicate", ["e", "f"], "2 near-identical rows"),  # one row dropped: rows overlap 2/3
        finding("label_leak", ["a", "e"], "2 rows contain 'kindly' (100%)", phrase="kindly", kind="style"),
        finding("pilot_gap", [], "gap +0.05", Severity.INFO, gap=0.05),
        finding("coverage_gap", [], "typos now rarer", kind="bucket", bucket="typos"),
        finding("exact_duplicate", ["h", "i"], "2 rows have the same text: z"),
    ]
    d = match_findings(old, new)
    how = {(m.old.check, m.how) for m in d.persisting}
    assert how == {("exact_duplicate", "id"), ("near_duplicate", "rows"), ("label_leak", "anchor"),
                   ("pilot_gap", "anchor"), ("coverage_gap", "anchor")}
    assert {f.message for f in d.fixed} == {"2 rows have the same text: y", "short rare"}
    assert [f.message for f in d.new] == ["2 rows have the same text: z"]
    for c in d.per_check:
        assert c.before == c.fixed + c.persisting and c.after == c.new + c.persisting
    assert d.fixed_by_severity["medium"] == 2 and d.new_by_severity["medium"] == 1


def test_rows_are_compared_by_a_key_that_survives_moves() -> None:
    old = [finding("conflicting_labels", ["0", "1"], "pair conflicts (old positions)")]
    new = [finding("conflicting_labels", ["5", "6"], "pair conflicts (new positions)")]
    assert len(match_findings(old, new).fixed) == 1  # positions differ, nothing in common
    keys_old, keys_new = {"0": "h1", "1": "h2"}, {"5": "h1", "6": "h2"}
    d = match_findings(old, new, old_key=keys_old.__getitem__, new_key=keys_new.__getitem__)
    assert [(m.how, m.overlap) for m in d.persisting] == [("rows", 1.0)] and not d.fixed


def test_two_rowless_findings_of_one_check_are_not_guessed() -> None:
    old = [finding("eval_too_clean", [], "a"), finding("eval_too_clean", [], "b")]
    new = [finding("eval_too_clean", [], "c"), finding("eval_too_clean", [], "d")]
    d = match_findings(old, new)
    assert len(d.fixed) == 2 and len(d.new) == 2 and not d.persisting


def fingerprint(ids: list[str], texts: list[str], labels: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"id": ids, "text_sha1": [text_hash(t) for t in texts], "label": labels})


def test_rows_by_id_and_by_text() -> None:
    old = fingerprint(["a", "b", "c", "d"], ["t1", "t2", "t3", "t4"], ["x", "x", "y", "y"])
    new = fingerprint(["a", "b", "d", "e"], ["t1", "t2", "t4 edited", "t5"], ["x", "y", "y", "x"])
    r = diff_rows(old, new, "id")
    assert (r.added, r.removed, r.relabelled, r.edited) == (1, 1, 1, 1)
    assert r.examples["relabelled"] == ["b: x -> y"] and r.examples["removed"] == ["c"]
    # without ids: positions shift, texts stay; a repeated text keeps its multiset of labels
    old = fingerprint(["0", "1", "2", "3", "4"], ["t1", "t2", "t2", "t3", "t4"], ["x", "x", "y", "y", "y"])
    new = fingerprint(["0", "1", "2", "3"], ["t4", "t2", "t2", "t1"], ["y", "y", "y", "z"])
    r = diff_rows(old, new, "text")
    assert (r.added, r.removed, r.relabelled) == (0, 1, 2)


def small_context(tmp_path: Path) -> AuditContext:
    texts = ["refund please", "card charged twice", "cannot log in", "money back now", "double charge",
             "password broken"]
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(6)], "text": texts,
                          "label": ["refund", "billing", "login", "refund", "billing", "login"]})
    path = tmp_path / "train.csv"
    frame.to_csv(path, index=False)
    return AuditContext(train=Dataset(path, frame, id_col="id"), config=AuditConfig())


def write_folder(folder: Path, ctx: AuditContext, findings: list[Finding], *, with_facts: bool,
                 ran: tuple[str, ...] | None = None) -> Path:
    folder.mkdir(parents=True)
    result = RunResult(ctx=ctx, findings=findings, statuses=[], seconds=0.0)
    summary: dict[str, object] = {"verdict": result.verdict, "dataset": {"train": {
        "file": str(ctx.train.path), "kind": ctx.train.kind,
        "columns": {"text": "text", "label": "label", "id": ctx.train.id_col}}}}
    if ran is not None:
        summary["checks"] = [{"name": n, "state": "ran"} for n in ran] + [{"name": "pilot_gap", "state": "skipped"}]
    if with_facts:
        summary["facts"] = run_facts(ctx, findings).model_dump(mode="json")
        write_row_fingerprints(ctx.train, folder)
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    (folder / "findings.jsonl").write_text("".join(f.model_dump_json() + "\n" for f in findings), encoding="utf-8")
    return folder


def test_run_facts_hold_what_the_diff_needs(tmp_path: Path) -> None:
    ctx = small_context(tmp_path)
    pilot = finding("pilot_gap", [], "gap", gap=0.3, gap_against="real",
                    sets={"held_out": {"n": 10, "accuracy": 0.9, "macro_f1": 0.8}, "real": {"n": 10, "accuracy": 0.6, "macro_f1": 0.5}})
    facts = RunFacts.model_validate(json.loads(run_facts(ctx, [pilot]).model_dump_json()))
    assert facts.label_counts == {"refund": 2, "billing": 2, "login": 2} and facts.rows == 6
    assert facts.style["train"]["mean_words"] == pytest.approx(ctx.train.frame["text"].str.split().map(len).mean(),
                                                               abs=1e-3)
    assert facts.pilot is not None and facts.pilot.gap == 0.3 and facts.pilot.accuracy == {"held_out": 0.9, "real": 0.6}


def test_old_folders_without_facts_or_rows_file(tmp_path: Path) -> None:
    ctx = small_context(tmp_path)
    balance = finding("class_balance", [], "3 labels", kind="label_counts", counts={"refund": 2, "billing": 2, "login": 2},
                      n_rows=6)
    old = write_folder(tmp_path / "old", ctx, [balance, finding("exact_duplicate", ["r0", "r3"], "dup")],
                       with_facts=False)
    frame = ctx.train.frame.drop(index=3).assign(label=lambda f: f["label"].where(f["id"] != "r1", "refund"))
    new_path = tmp_path / "v2.csv"
    frame.to_csv(new_path, index=False)
    ctx2 = AuditContext(train=Dataset(new_path, frame.reset_index(drop=True), id_col="id"), config=AuditConfig())
    new = write_folder(tmp_path / "new", ctx2, [], with_facts=True)
    assert (new / ROWS_FILE).exists()
    d = diff_audits(read_audit(old), read_audit(new))
    assert (d.rows.removed, d.rows.relabelled, d.rows.added) == (1, 1, 0)
    assert {s.name: (s.before, s.after) for s in d.labels} == {"refund": (2, 2), "billing": (2, 1), "login": (2, 2)}
    assert sorted(f.check for f in d.findings.fixed) == ["class_balance", "exact_duplicate"]
    assert any("no `facts`" in n for n in d.notes) and any("rebuilt from" in n for n in d.notes)
    ctx.train.path.unlink()  # the old data file is gone: the rows cannot be compared, the rest still can
    gone = diff_audits(read_audit(old), read_audit(new))
    assert not gone.rows.available and any("data file is gone" in n for n in gone.notes)


def test_bad_folders_and_cli(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no summary\.json"):
        read_audit(tmp_path)
    ctx = small_context(tmp_path)
    found = [finding("exact_duplicate", ["r0", "r3"], "dup"), finding("label_leak", ["r0"], "leak", phrase="p")]
    a = write_folder(tmp_path / "a", ctx, found, with_facts=True, ran=("exact_duplicate", "label_leak"))
    b = write_folder(tmp_path / "b", ctx, [], with_facts=True, ran=("exact_duplicate",))  # label_leak skipped
    runner = CliRunner()
    bad = runner.invoke(app, ["diff", str(a), str(tmp_path / "missing")])
    assert bad.exit_code == 2 and "not a folder" in bad.stderr
    ok = runner.invoke(app, ["diff", str(a), str(b), "--out", str(tmp_path / "d")])
    assert ok.exit_code == 0 and "1 fixed" in ok.stdout
    data = json.loads((tmp_path / "d" / "diff.json").read_text())
    assert data["findings"]["per_check"] == [{"check": "exact_duplicate", "before": 1, "after": 0, "fixed": 1,
                                              "new": 0, "persisting": 0}]
    assert data["not_compared"] == ["label_leak", "pilot_gap"]
    assert "Not compared (did not run in both audits): label_leak, pilot_gap" in (tmp_path / "d" / "diff.md").read_text()
