"""Render and write the guide job's outputs: revised_guide.md, revised_guide.diff (against the old
guide, or against the bare label list when there was none), relabel_candidates.csv and
guide_verification.csv. No logic beyond layout."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from audit_agent.io.atomic import write_text, write_with
from audit_agent.tasks.guide import LabelSection, MindReadingRow, PairSection
from audit_agent.verify.guide import ItemCheck

GUIDE_FILE = "revised_guide.md"
DIFF_FILE = "revised_guide.diff"
RELABEL_FILE = "relabel_candidates.csv"
CHECKS_FILE = "guide_verification.csv"


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _cell(text: str, limit: int = 120) -> str:
    return _one_line(text, limit).replace("|", "\\|")


def _quote(text: str) -> str:
    """A data row quoted verbatim as a markdown block quote (each line prefixed)."""
    return "\n".join(f"  > {line}" if line.strip() else "  >" for line in str(text).splitlines() or [""])


def render_guide(sections: Mapping[str, LabelSection], rules: Mapping[tuple[str, str], PairSection],
                 mind: Sequence[MindReadingRow], *, n_rows: int, old_guide_name: str | None,
                 notes: Sequence[str] = ()) -> str:
    """The revised guide as plain markdown, readable without rendering."""
    needs = sum(s.status == "needs review" for s in sections.values()) + sum(
        r.status == "needs review" for r in rules.values())
    lines = [
        "# Annotation guide (revised)",
        "",
        f"Written by audit-agent from {n_rows} rows, {len(sections)} labels and {len(rules)} colliding "
        f"label pairs{f', starting from {old_guide_name}' if old_guide_name else ''}. Definitions and "
        "tie-break rules were drafted by a language model and checked by code; examples are quoted "
        "verbatim from the data.",
        "",
    ]
    if needs:
        lines += [f"**{needs} item(s) are marked [needs review]**: their drafted text failed the checks "
                  "twice, so a person has to write them.", ""]
    lines += [
        "How to use it:",
        "1. Pick the label whose definition fits; check what it is *not*.",
        "2. If a message fits two labels, apply the tie-break rule for that pair.",
        "3. If you would have to guess what the writer meant, follow *Rows that need mind reading*.",
        "4. Relabel the rows in relabel_candidates.csv only after this guide is adopted, not before.",
        "",
        "## Labels",
        "",
    ]
    for label in sorted(sections):
        sec = sections[label]
        lines += [f"### `{label}`", ""]
        if sec.status == "repaired":
            lines += ["_(rewritten once after failing a check)_", ""]
        lines += [f"- **Is:** {_one_line(sec.definition)}", f"- **Is not:** {_one_line(sec.not_this)}"]
        if sec.examples:
            lines.append("- **Examples from the data:**")
            for ex, rid in zip(sec.examples, sec.example_ids, strict=False):
                lines.append(f"  row {rid}:")
                lines.append(_quote(ex))
        else:
            lines.append("- **Examples from the data:** none found ([needs review])")
        lines.append("")
    lines += ["## Tie-break rules for labels that collide", ""]
    if not rules:
        lines += ["The audit found no colliding label pairs.", ""]
    for (a, b), rule in sorted(rules.items()):
        lines += [f"### `{a}` vs `{b}`", ""]
        lines.append(rule.when if rule.status == "needs review" else rule.rule)
        lines += ["", f"_Why this pair: flagged by {', '.join(rule.sources) or 'the audit'}._", ""]
    lines += [
        "## Rows that need mind reading",
        "",
        "A message that cannot be labelled without guessing the writer's intent gets one of three "
        "treatments: **add context** (ask for or attach the missing detail, then label it), **move to a "
        "broader class** (one class that covers the labels it could be), or **drop** it from the "
        "training data. Where a tie-break rule settles it, apply the rule.",
        "",
    ]
    if mind:
        lines += ["| row | text | labels seen | action | why |", "|---|---|---|---|---|"]
        for r in mind:
            lines.append(f"| {r.id} | {_cell(r.text)} | {_cell(', '.join(r.labels), 80)} | {r.action} | "
                         f"{_cell(r.why, 200)} |")
        lines.append("")
    else:
        lines += ["The audit flagged no such rows.", ""]
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines).rstrip() + "\n"


def labels_only_guide(labels: Sequence[str]) -> str:
    """The 'old guide' when there was none: the label names."""
    return "# Labels\n\n" + "".join(f"- {lab}\n" for lab in labels)


def guide_diff(old_text: str | None, new_text: str, labels: Sequence[str]) -> str:
    """Unified diff of the old guide (or the bare label list) against the revised guide."""
    old = old_text if old_text is not None else labels_only_guide(labels)
    old_name = "old_guide" if old_text is not None else "labels_only"
    diff = difflib.unified_diff(old.splitlines(keepends=True), new_text.splitlines(keepends=True),
                                fromfile=old_name, tofile="revised_guide.md")
    return "".join(line if line.endswith("\n") else line + "\n" for line in diff)


def write_guide_outputs(out_dir: Path, markdown: str, old_text: str | None, labels: Sequence[str],
                        relabel: pd.DataFrame, checks: Sequence[ItemCheck]) -> dict[str, Path]:
    """Write the four files atomically; returns their paths by kind."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"guide": out_dir / GUIDE_FILE, "diff": out_dir / DIFF_FILE, "relabel": out_dir / RELABEL_FILE,
             "checks": out_dir / CHECKS_FILE}
    write_text(paths["guide"], markdown)
    write_text(paths["diff"], guide_diff(old_text, markdown, labels))
    write_with(paths["relabel"], lambda p: relabel.to_csv(p, index=False))
    check_frame = pd.DataFrame([asdict(c) for c in checks], columns=["item", "rule", "passed", "detail"])
    write_with(paths["checks"], lambda p: check_frame.to_csv(p, index=False))
    return paths
