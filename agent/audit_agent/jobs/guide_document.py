"""The revised annotation guide as a markdown document: per label a definition, what it is not and
quoted examples; per colliding pair a tie-break rule; the rows that need mind reading and what to do
with each. Pure rendering: the job verifies this text before anything is written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from audit_agent.tasks.guide import LabelSection, MindReadingRow, PairSection


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
