"""report.md: a readable summary of a RunResult for a team lead, rendered with jinja2.

Layout only. Every number and claim shown comes from a finding (its id is printed next to it), a
CheckStatus, the JudgeSummary or RunResult.extra.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from audit_agent.checks import KINDS
from audit_agent.findings import Finding, Severity, sort_findings
from audit_agent.run_result import CheckStatus, RunResult

TEMPLATE_DIR = Path(__file__).parent / "templates"
TOP_FINDINGS = 8
TOP_PER_CHECK = 2
EXAMPLES_PER_FINDING = 5
ROWS_PER_CHECK_TABLE = 15
SNIPPET_CHARS = 160

GENERIC_RECOMMENDATION = "Review the rows listed under this check in findings.jsonl."
UNVERIFIED_NOTE = "Unverified claims from the judge: check them by hand before acting on them."

_MD_SPECIAL = re.compile(r"([\\`*<>|\[\]]|(?<!\w)_|_(?!\w))")


def escape(text: Any) -> str:
    """One line of row text that cannot break markdown: whitespace folded, special characters escaped."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def snippet(text: Any, limit: int = SNIPPET_CHARS) -> str:
    flat = " ".join(str(text).split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return escape(flat)


@dataclass
class Example:
    id: str
    text: str
    label: str = ""
    target: str = ""


@dataclass
class Item:
    """One finding as the report shows it."""

    f: Finding
    message: str
    rows: str
    examples: list[Example] = field(default_factory=list)

    @property
    def marker(self) -> str:
        return "" if self.f.verified else " (unverified claim)"


@dataclass
class Section:
    """One check: what it looks for, how it went, its findings."""

    name: str
    description: str
    state: str
    reason: str
    seconds: float
    items: list[Item]
    more: int
    notes: list[str] = field(default_factory=list)


class RowLookup:
    """Row text and label by (split, id); the id index of a split is built once, on first use."""

    def __init__(self, result: RunResult) -> None:
        self._ctx = result.ctx
        self._index: dict[str, pd.Index] = {}

    def _split(self, split: str) -> tuple[pd.DataFrame, pd.Index] | None:
        ds = {"train": self._ctx.train, "eval": self._ctx.eval, "real": self._ctx.real}.get(split)
        if ds is None:
            return None
        if split not in self._index:
            self._index[split] = pd.Index(ds.frame["id"].astype(str))
        return ds.frame, self._index[split]

    def examples(self, f: Finding, limit: int = EXAMPLES_PER_FINDING) -> list[Example]:
        found = self._split(f.split)
        if found is None:
            return []
        frame, index = found
        generation = self._ctx.train.kind == "generation"
        keys = [str(rid) for rid in f.rows[:limit]]
        positions = index.get_indexer(pd.Index(keys)).tolist()  # ids are unique (the loader ensures it)
        has_label = "label" in frame.columns
        out = []
        for key, pos in zip(keys, positions, strict=True):
            if pos < 0:
                continue
            text = frame["text"].iat[pos]
            raw_label: Any = frame["label"].iat[pos] if has_label else None
            label = "" if raw_label is None or raw_label != raw_label else str(raw_label)
            if generation:
                out.append(Example(key, snippet(text, 100), target=snippet(label, 100)))
            else:
                out.append(Example(key, snippet(text), escape(label)))
        return out


def _rows_cell(f: Finding, shown: int = 3) -> str:
    if not f.rows:
        return "-"
    head = ", ".join(escape(r) for r in f.rows[:shown])
    rest = len(f.rows) - shown
    return f"{len(f.rows)}: {head}" + (f" +{rest}" if rest > 0 else "")


def _item(f: Finding, lookup: RowLookup | None = None) -> Item:
    return Item(f=f, message=escape(f.message), rows=_rows_cell(f),
                examples=lookup.examples(f) if lookup is not None else [])


def _description(name: str) -> str:
    """The registered kind's one-line description ('' when unknown)."""
    kind = KINDS.get(name)
    return kind.description if kind is not None else ""


def _sections(result: RunResult) -> list[Section]:
    sections = []
    for status in result.statuses:
        found = sort_findings(result.by_check(status.name))
        sections.append(Section(
            name=status.name, description=_description(status.name), state=status.state,
            reason=status.reason, seconds=status.seconds,
            items=[_item(f) for f in found[:ROWS_PER_CHECK_TABLE]],
            more=max(0, len(found) - ROWS_PER_CHECK_TABLE),
            notes=_scope_notes(found),
        ))
    return sections


def _scope_notes(found: list[Finding]) -> list[str]:
    """What a check's findings say about the rows it read (e.g. a stratified sample), once each."""
    notes = {str(getattr(f.evidence, "sampled_note", None)) for f in found
             if getattr(f.evidence, "sampled_note", None)}
    return sorted(notes)


def _top(ordered: list[Finding]) -> list[Finding]:
    """The most severe findings, at most TOP_PER_CHECK per check so the top list shows breadth."""
    per_check: dict[str, int] = {}
    top = []
    for f in ordered:
        if f.severity.rank < Severity.MEDIUM.rank or f.evidence.summary:
            continue
        if per_check.get(f.check, 0) < TOP_PER_CHECK:
            per_check[f.check] = per_check.get(f.check, 0) + 1
            top.append(f)
        if len(top) == TOP_FINDINGS:
            break
    return top


def _why(result: RunResult) -> str:
    if result.failed_checks:
        names = ", ".join(s.name for s in result.failed_checks)
        return f"{len(result.failed_checks)} check(s) crashed ({names}); fix or skip them and run again."
    high = [f for f in result.findings if f.severity is Severity.HIGH]
    verified = [f for f in high if f.verified]
    if verified:
        checks = list(dict.fromkeys(f.check for f in verified))
        return (f"{len(verified)} verified high-severity finding(s) from {len(checks)} check(s): "
                f"{', '.join(checks)}.")
    note = "no verified high-severity finding"
    if high:
        note += f"; {len(high)} high-severity claim(s) are unverified and do not decide the verdict"
    return note + "."


def _next_steps(result: RunResult, files: dict[str, str]) -> list[dict[str, Any]]:
    """One fixed recommendation per check that produced a non-info finding, most severe first."""
    by_check: dict[str, list[Finding]] = {}
    for f in sort_findings(result.findings):
        if f.severity is not Severity.INFO and f.verified:
            by_check.setdefault(f.check, []).append(f)
    steps = []
    for name, found in by_check.items():
        kind = KINDS.get(name)
        text = kind.recommendation if kind is not None else GENERIC_RECOMMENDATION
        if "{dedup_file}" in text:
            dedup = files.get("deduplicated")
            text = text.replace("{dedup_file}", dedup) if dedup else GENERIC_RECOMMENDATION
        steps.append({"check": name, "text": text, "severity": found[0].severity.value,
                      "ids": [f.id for f in found[:2]], "more": max(0, len(found) - 2)})
    unverified = [f for f in result.findings if not f.verified]
    if unverified:
        steps.append({"check": "judge", "text": UNVERIFIED_NOTE, "severity": "unverified",
                      "ids": [f.id for f in unverified[:3]], "more": max(0, len(unverified) - 3)})
    return steps


def _status_counts(statuses: list[CheckStatus]) -> dict[str, int]:
    counts = {"ran": 0, "skipped": 0, "failed": 0}
    for s in statuses:
        counts[s.state] += 1
    return counts


def render_report(result: RunResult, *, files: dict[str, str] | None = None, dropped: int = 0) -> str:
    """The whole report.md as text."""
    files = files or {}
    lookup = RowLookup(result)
    ordered = sort_findings(result.findings)
    top = [_item(f, lookup) for f in _top(ordered)]
    status_names = {s.name for s in result.statuses}
    others = [f for f in ordered if f.check not in status_names]
    ctx = result.ctx
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)
    text = env.get_template("report.md.j2").render(
        r=result, ctx=ctx, verdict=result.verdict, counts=result.count_by_severity(), why=_why(result),
        top=top, sections=_sections(result), others=[_item(f, lookup) for f in others],
        judge=result.judge, steps=_next_steps(result, files), files=files, dropped=dropped,
        status_counts=_status_counts(result.statuses),
        unverified=sum(not f.verified for f in result.findings), escape=escape,
        guide=result.guide, paraphrase=result.paraphrase,
    )
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"
