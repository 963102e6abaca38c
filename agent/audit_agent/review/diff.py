"""Compare two audits (two `run` output folders): label counts, rows added / removed / relabelled,
findings fixed / new / persisting per check, style and coverage shift, and the pilot gap before and after.
Reads summary.json, findings.jsonl and rows.parquet; older folders without summary `facts` or
rows.parquet are read defensively (facts rebuilt from findings.jsonl; row fingerprints rebuilt from the
data file summary.json names, when it is still there)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ValidationError, computed_field

from audit_agent.errors import InputError
from audit_agent.findings import Finding
from audit_agent.review.finding_match import FindingsDiff, match_findings
from audit_agent.review.run_facts import ROWS_FILE, RunFacts, facts_from_findings, row_fingerprints

MAX_EXAMPLES = 20


@dataclass
class AuditSnapshot:
    """One audit folder, read."""

    folder: Path
    summary: dict[str, Any]
    findings: list[Finding]
    facts: RunFacts
    rows: pd.DataFrame | None  # id, text_sha1, label
    has_id_column: bool
    notes: list[str] = field(default_factory=list)


def _read_rows(folder: Path, summary: dict[str, Any], notes: list[str]) -> pd.DataFrame | None:
    path = folder / ROWS_FILE
    if path.exists():
        try:
            return pd.read_parquet(path).astype({"id": str, "text_sha1": str})
        except Exception as exc:  # pyarrow raises many types; all mean an unreadable file
            raise InputError(path, f"cannot read: {str(exc).splitlines()[0][:200]}") from None
    train = (summary.get("dataset") or {}).get("train") or {}
    data = Path(str(train.get("file", "")))
    if not train.get("file") or not data.is_file():
        notes.append(f"{folder.name}: no {ROWS_FILE} and the data file is gone: rows added/removed/relabelled "
                     "cannot be counted")
        return None
    from audit_agent.io.loader import load_dataset

    cols = train.get("columns") or {}
    try:
        ds = load_dataset(data, text_col=cols.get("text"), label_col=cols.get("label"), id_col=cols.get("id"),
                          kind=train.get("kind"))
    except InputError as exc:
        notes.append(f"{folder.name}: no {ROWS_FILE}, and the data file cannot be read again ({exc}): rows "
                     "added/removed/relabelled cannot be counted")
        return None
    newer = data.stat().st_mtime > (folder / "summary.json").stat().st_mtime
    notes.append(f"{folder.name}: no {ROWS_FILE}; row fingerprints rebuilt from {data}"
                 + (" (modified after the audit: the row counts may be off)" if newer else ""))
    return row_fingerprints(ds)


def read_audit(folder: Path | str) -> AuditSnapshot:
    """Read one audit folder; a missing summary.json or findings.jsonl is an InputError."""
    from audit_agent.review.findings_file import read_findings

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "not a folder (give the --out folder of an `audit-agent run`)")
    summary_path = folder / "summary.json"
    if not summary_path.exists():
        raise InputError(folder, "no summary.json: not the output folder of an `audit-agent run`")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(summary_path, f"line {exc.lineno}: not valid JSON ({exc.msg})") from None
    findings = read_findings(folder / "findings.jsonl")
    notes: list[str] = []
    facts = facts_from_findings(findings)
    if isinstance(summary.get("facts"), dict):
        try:
            facts = RunFacts.model_validate(summary["facts"])
        except ValidationError:
            notes.append(f"{folder.name}: summary.json `facts` unreadable; rebuilt from findings.jsonl")
    else:
        notes.append(f"{folder.name}: summary.json has no `facts` (an older run); label counts, style, coverage "
                     "and pilot gap read from findings.jsonl")
    columns = ((summary.get("dataset") or {}).get("train") or {}).get("columns") or {}
    rows = _read_rows(folder, summary, notes)
    return AuditSnapshot(folder, summary, findings, facts, rows, bool(columns.get("id")), notes)


class RowsDiff(BaseModel):
    available: bool
    matched_by: Literal["id", "text"] | None = None
    before: int | None = None
    after: int | None = None
    added: int = 0
    removed: int = 0
    relabelled: int = 0
    edited: int = 0  # same id, another text (id matching only)
    examples: dict[str, list[str]] = {}  # kind -> row ids (relabelled: "id: old -> new")


def diff_rows(old: pd.DataFrame, new: pd.DataFrame, by: Literal["id", "text"]) -> RowsDiff:
    """Rows added, removed, relabelled (and edited) between two fingerprints."""
    out = RowsDiff(available=True, matched_by=by, before=len(old), after=len(new))
    ex: dict[str, list[str]] = {"added": [], "removed": [], "relabelled": [], "edited": []}
    if by == "id":
        m = old.merge(new, on="id", how="outer", suffixes=("_old", "_new"), indicator=True)
        both = m[m["_merge"] == "both"]
        kinds = {"added": m[m["_merge"] == "right_only"], "removed": m[m["_merge"] == "left_only"],
                 "edited": both[both["text_sha1_old"] != both["text_sha1_new"]],
                 "relabelled": both[both["label_old"].astype(str) != both["label_new"].astype(str)]}
        for kind, rows in kinds.items():
            setattr(out, kind, len(rows))
            shown = rows.head(MAX_EXAMPLES)
            ex[kind] = ([f"{i}: {a} -> {b}" for i, a, b in zip(shown["id"], shown["label_old"], shown["label_new"],
                                                                  strict=True)]
                        if kind == "relabelled" else shown["id"].astype(str).tolist())
    else:
        _diff_by_text(old, new, out, ex)
    out.examples = {k: v for k, v in ex.items() if v}
    return out


def _diff_by_text(old: pd.DataFrame, new: pd.DataFrame, out: RowsDiff, ex: dict[str, list[str]]) -> None:
    """Without ids: rows are (text hash, label) multisets; per text, unmatched old and new rows pair up
    as relabelled, the rest are removed or added."""
    pairs_o = Counter(zip(old["text_sha1"].tolist(), old["label"].astype(str).tolist(), strict=True))
    pairs_n = Counter(zip(new["text_sha1"].tolist(), new["label"].astype(str).tolist(), strict=True))
    left_o: dict[str, Counter[str]] = {}
    left_n: dict[str, Counter[str]] = {}
    for (h, label), n in (pairs_o - pairs_n).items():
        left_o.setdefault(h, Counter())[label] += n
    for (h, label), n in (pairs_n - pairs_o).items():
        left_n.setdefault(h, Counter())[label] += n
    first_o = old.drop_duplicates("text_sha1").set_index("text_sha1")["id"]
    first_n = new.drop_duplicates("text_sha1").set_index("text_sha1")["id"]
    for h in sorted(set(left_o) | set(left_n)):
        lo, ln = left_o.get(h, Counter()), left_n.get(h, Counter())
        moved = min(lo.total(), ln.total())
        out.relabelled += moved
        out.removed += lo.total() - moved
        out.added += ln.total() - moved
        if moved and len(ex["relabelled"]) < MAX_EXAMPLES:
            ex["relabelled"].append(f"{first_o[h]}: {next(iter(lo))} -> {next(iter(ln))}")
        if lo.total() > moved and len(ex["removed"]) < MAX_EXAMPLES:
            ex["removed"].append(str(first_o[h]))
        if ln.total() > moved and len(ex["added"]) < MAX_EXAMPLES:
            ex["added"].append(str(first_n[h]))


class Shift(BaseModel):
    name: str
    before: float | None
    after: float | None
    reference: float | None = None  # the real batch's value, where there is one

    @computed_field  # type: ignore[prop-decorator]
    @property
    def delta(self) -> float | None:
        return None if self.before is None or self.after is None else round(self.after - self.before, 4)


class AuditDiff(BaseModel):
    old: str
    new: str
    verdict_before: str | None
    verdict_after: str | None
    findings_before: int
    findings_after: int
    rows: RowsDiff
    findings: FindingsDiff
    labels: list[Shift]
    labels_complete: bool
    style: list[Shift]  # training split statistics, the real batch as reference
    style_distance_to_real: Shift | None
    coverage: list[Shift]  # share of training rows per messy-input bucket, the real batch as reference
    pilot: list[Shift]  # the gap, then accuracy per set
    pilot_gap_against: str | None
    not_compared: list[str]  # checks that did not run in both audits ("judge" for the judge's findings)
    notes: list[str]


def _row_key(snap: AuditSnapshot, by: Literal["id", "text"]) -> dict[str, str]:
    if snap.rows is None or by == "id":
        return {}
    return dict(zip(snap.rows["id"].astype(str), snap.rows["text_sha1"], strict=True))


def _shifts(before: dict[str, float], after: dict[str, float], reference: dict[str, float] | None = None
            ) -> list[Shift]:
    names = list(dict.fromkeys([*before, *after]))
    ref = reference or {}
    return [Shift(name=k, before=before.get(k), after=after.get(k), reference=ref.get(k)) for k in names]


def _style_distance(old: RunFacts, new: RunFacts) -> Shift | None:
    from audit_agent.features.split_compare import style_distance

    values = []
    for facts in (old, new):
        train, real = facts.style.get("train"), facts.style.get("real")
        try:
            values.append(round(style_distance(train, real), 4) if train and real else None)
        except KeyError:
            values.append(None)
    return None if values == [None, None] else Shift(name="style distance train-real", before=values[0],
                                                     after=values[1])


def _pilot(old: RunFacts, new: RunFacts) -> list[Shift]:
    po, pn = old.pilot, new.pilot
    if po is None and pn is None:
        return []
    gap = Shift(name="gap", before=po.gap if po else None, after=pn.gap if pn else None)
    accuracy = _shifts(po.accuracy if po else {}, pn.accuracy if pn else {})
    return [gap, *(Shift(name=f"accuracy {s.name}", before=s.before, after=s.after) for s in accuracy)]


JUDGE = "judge"


def not_compared(old: AuditSnapshot, new: AuditSnapshot) -> set[str]:
    """Checks that summary.json says did not run (skipped, failed, not listed) in one of the audits, and
    "judge" when only one audit used the LLM judge: their findings are neither fixed nor new."""
    def ran(snap: AuditSnapshot) -> tuple[set[str], set[str]] | None:
        checks = snap.summary.get("checks")
        if not isinstance(checks, list):
            return None
        listed = {str(c.get("name")) for c in checks if isinstance(c, dict)}
        return listed, {str(c.get("name")) for c in checks if isinstance(c, dict) and c.get("state") == "ran"}
    out: set[str] = set()
    ro, rn = ran(old), ran(new)
    if ro is not None and rn is not None:
        out = (ro[0] | rn[0]) - (ro[1] & rn[1])
    if (old.summary.get("judge") is None) != (new.summary.get("judge") is None):
        out.add(JUDGE)
    return out


def _compared(f: Finding, skipped: set[str]) -> bool:
    return f.check not in skipped and not (JUDGE in skipped and f.source == "judge")


def diff_audits(old: AuditSnapshot, new: AuditSnapshot) -> AuditDiff:
    """Everything diff.md / diff.json show."""
    notes = [*old.notes, *new.notes]
    by: Literal["id", "text"] = "id" if old.has_id_column and new.has_id_column else "text"
    if old.rows is not None and new.rows is not None:
        rows = diff_rows(old.rows, new.rows, by)
    else:
        rows = RowsDiff(available=False)
    if by == "text":
        notes.append("rows matched by text hash (no id column in both versions): row ids of the findings "
                     "are compared through their texts")
    ko, kn = _row_key(old, by), _row_key(new, by)
    skipped = not_compared(old, new)
    if skipped:
        notes.append("not compared (did not run in both audits): " + ", ".join(sorted(skipped)))
    findings = match_findings([f for f in old.findings if _compared(f, skipped)],
                              [f for f in new.findings if _compared(f, skipped)],
                              old_key=lambda r: ko.get(r, r), new_key=lambda r: kn.get(r, r))
    fo, fn = old.facts, new.facts
    style_o, style_n = fo.style.get("train", {}), fn.style.get("train", {})
    real_ref = fn.style.get("real") or fo.style.get("real")
    return AuditDiff(
        old=str(old.folder), new=str(new.folder), verdict_before=old.summary.get("verdict"),
        verdict_after=new.summary.get("verdict"), findings_before=len(old.findings),
        findings_after=len(new.findings), rows=rows, findings=findings,
        labels=[Shift(name=s.name, before=s.before or 0, after=s.after or 0) for s in
                _shifts({k: float(v) for k, v in (fo.label_counts or {}).items()},
                        {k: float(v) for k, v in (fn.label_counts or {}).items()})],
        labels_complete=fo.label_counts_complete and fn.label_counts_complete
        and fo.label_counts is not None and fn.label_counts is not None,
        style=_shifts(style_o, style_n, real_ref), style_distance_to_real=_style_distance(fo, fn),
        coverage=_shifts(fo.coverage.get("train", {}), fn.coverage.get("train", {}),
                         fn.coverage.get("real") or fo.coverage.get("real")),
        pilot=_pilot(fo, fn), pilot_gap_against=next((p.gap_against for p in (fn.pilot, fo.pilot) if p), None),
        not_compared=sorted(skipped), notes=notes)
