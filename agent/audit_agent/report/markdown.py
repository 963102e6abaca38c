"""report.md: a readable summary of a RunResult for a team lead, rendered with jinja2.

Layout only. Every number and claim shown comes from a finding (its id is printed next to it), a
CheckStatus, the JudgeSummary or RunResult.extra.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from audit_agent.findings import Finding, Severity, sort_findings
from audit_agent.run_result import CheckStatus, RunResult

TEMPLATE_DIR = Path(__file__).parent / "templates"
TOP_FINDINGS = 8
TOP_PER_CHECK = 2
EXAMPLES_PER_FINDING = 5
ROWS_PER_CHECK_TABLE = 15
SNIPPET_CHARS = 160

# What to do when a check fires: a fixed text per check name.
RECOMMENDATIONS: dict[str, str] = {
    "exact_duplicate": "Drop the duplicates: deduplicated.{ext} is written next to this report, with every "
                       "extra copy removed.",
    "near_duplicate": "Drop the near-copies (also removed in deduplicated.{ext}) and ask the generator for "
                      "more varied rows instead of paraphrases of the same one.",
    "conflicting_labels": "Decide one label for each group of (near-)identical rows with different labels, "
                          "then write the tie-break rule into the annotation guide.",
    "class_balance": "Generate more rows for the rare labels (or merge/drop them) before tuning; a model "
                     "rarely learns a class from a handful of rows.",
    "coverage_gap": "Add short, messy, misspelled and mixed-intent rows like the ones real users write; "
                    "the training set does not cover them.",
    "repeated_opening": "Strip or vary the stock opening lines; a model can learn the label from the greeting.",
    "repeated_ending": "Strip or vary the stock sign-offs; they add nothing and can become a shortcut.",
    "template_frame": "Rewrite rows that only swap names, ids or dates inside one frame; they teach the frame, "
                      "not the intent.",
    "label_leak": "Remove or spread the phrases that appear under one label only; the model will learn the "
                  "phrase instead of the intent.",
    "contamination": "Remove the eval rows that copy training rows, or the score on eval will be too high.",
    "eval_too_clean": "Build the eval set from real messages (or add real-style rows to it); a clean eval set "
                      "overstates how well the model will do on real traffic.",
    "real_gap": "Make the training rows look like real messages (length, casing, typos, tone): put real "
                "examples in the generation prompt or mix real rows into the training set.",
    "real_in_train": "Real rows already in the training set are fine for training, but never use them to "
                     "measure the model.",
    "label_issue": "Review the rows whose label the cross-validated classifier disagrees with (start with "
                   "review_sample.csv) and fix the wrong ones.",
    "review_sample": "Have a person label review_sample.csv (empty reviewer columns are included) to measure "
                     "how often the labels are wrong.",
    "input_rows": "Fix or remove the rows the loader had to drop or clean; they are listed in findings.jsonl.",
    "label_overlap": "Write a tie-break rule for each colliding label pair into the annotation guide (see "
                     "revised_guide.md when the LLM ran), or merge the two labels if no rule separates them.",
    "pilot_gap": "Do not trust the clean test score: the pilot model does worse on real messages. Close the "
                 "style gap (coverage_gap, real_gap) and score the tuned model on real rows.",
    "judge_contradicted": "Check the verified rows by hand and fix their labels; the judge and a deterministic "
                          "signal both say the label is wrong.",
    "judge_ambiguous": "Give these rows context, move them to a broader class or drop them: the label cannot be "
                       "read from the text alone.",
}
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
    """The registered check's one-line description ('' when unknown)."""
    try:
        from audit_agent.checks import REGISTRY
    except Exception:  # a check module that fails to import must not cost the report
        module = sys.modules.get("audit_agent.checks.registry")
        REGISTRY = getattr(module, "REGISTRY", {})
    spec = REGISTRY.get(name)
    return spec.description if spec is not None and spec.description else ""


def _sections(result: RunResult) -> list[Section]:
    sections = []
    for status in result.statuses:
        found = sort_findings(result.by_check(status.name))
        sections.append(Section(
            name=status.name, description=_description(status.name), state=status.state,
            reason=status.reason, seconds=status.seconds,
            items=[_item(f) for f in found[:ROWS_PER_CHECK_TABLE]],
            more=max(0, len(found) - ROWS_PER_CHECK_TABLE),
        ))
    return sections


def _top(ordered: list[Finding]) -> list[Finding]:
    """The most severe findings, at most TOP_PER_CHECK per check so the top list shows breadth."""
    per_check: dict[str, int] = {}
    top = []
    for f in ordered:
        if f.severity.rank < Severity.MEDIUM.rank or f.evidence.get("summary"):
            continue
        if per_check.get(f.check, 0) < TOP_PER_CHECK:
            per_check[f.check] = per_check.get(f.check, 0) + 1
            top.append(f)
        if len(top) == TOP_FINDINGS:
            break
    return top


def _why(result: RunResult) -> str:
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
        text = RECOMMENDATIONS.get(name, GENERIC_RECOMMENDATION)
        if "{ext}" in text:
            dedup = files.get("deduplicated")
            text = text.replace("deduplicated.{ext}", dedup) if dedup else GENERIC_RECOMMENDATION
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
        extra_files=result.extra.get("files") if isinstance(result.extra.get("files"), dict) else {},
        unverified=sum(not f.verified for f in result.findings), escape=escape,
        guide=result.extra.get("guide"), paraphrase=result.extra.get("paraphrase"),
    )
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"
