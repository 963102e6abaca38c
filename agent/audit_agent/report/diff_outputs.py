"""Write diff.md and diff.json: two audits compared (review/diff.py computes, this lays it out)."""

from __future__ import annotations

import json
from pathlib import Path

from audit_agent.io.atomic import write_text
from audit_agent.report.review_outputs import fmt, table
from audit_agent.review.diff import AuditDiff, Shift
from audit_agent.review.finding_match import FindingRef

DIFF_MD = "diff.md"
DIFF_JSON = "diff.json"
MAX_LISTED = 60
HOW = {"id": "same finding id (nothing about it changed)",
       "anchor": "same check and the same subject in its evidence (phrase, frame, bucket, label pair, summary)",
       "rows": "same check and split, rows overlapping by at least half (Jaccard), compared by id or, without "
               "an id column, by text",
       "only one": "the only finding without rows of its check on each side"}


def _delta(s: Shift, digits: int) -> str:
    d = s.delta
    return "" if d is None else f"{d:+.{digits}f}"


def _shift_rows(shifts: list[Shift], digits: int, reference: bool = True) -> list[tuple[object, ...]]:
    return [(s.name, fmt(s.before, digits), fmt(s.after, digits), _delta(s, digits),
             *((fmt(s.reference, digits),) if reference else ())) for s in shifts]


def _refs(title: str, refs: list[FindingRef]) -> list[str]:
    lines = ["", f"## {title} ({len(refs)})", ""]
    if not refs:
        return [*lines, "None."]
    order = {"high": 0, "medium": 1, "low": 2, "info": 3}
    shown = sorted(refs, key=lambda f: (order.get(f.severity, 4), f.check))[:MAX_LISTED]
    lines += table(["severity", "check", "rows", "finding", "id"],
                   [(f.severity, f.check, f.rows, f.message, f.id) for f in shown])
    if len(refs) > len(shown):
        lines += ["", f"({len(refs) - len(shown)} more in {DIFF_JSON})"]
    return lines


def render_diff(d: AuditDiff) -> str:
    fd = d.findings
    lines = [f"# Audit diff: `{d.old}` -> `{d.new}`", "",
             f"Verdict: **{d.verdict_before}** -> **{d.verdict_after}**; findings {d.findings_before} -> "
             f"{d.findings_after}: {len(fd.fixed)} fixed, {len(fd.new)} new, {len(fd.persisting)} persisting "
             f"(without info: {sum(v for k, v in fd.fixed_by_severity.items() if k != 'info')} fixed, "
             f"{sum(v for k, v in fd.new_by_severity.items() if k != 'info')} new).", ""]
    r = d.rows
    lines += ["## Rows", ""]
    if r.available:
        lines += [f"{r.before} rows -> {r.after} rows, matched by {r.matched_by}.", ""]
        lines += table(["change", "rows", "e.g."], [
            (kind, getattr(r, kind), ", ".join(r.examples.get(kind, [])[:8]))
            for kind in ("added", "removed", "relabelled", "edited") if kind != "edited" or r.matched_by == "id"])
    else:
        lines.append("Not available (see the notes).")
    lines += ["", "## Findings per check", ""]
    lines += table(["check", "before", "after", "fixed", "new", "persisting"],
                   [(c.check, c.before, c.after, c.fixed, c.new, c.persisting) for c in fd.per_check])
    if d.not_compared:
        lines += ["", f"Not compared (did not run in both audits): {', '.join(d.not_compared)}."]
    lines += ["", "A finding persists when it is found again: matched " + "; ".join(
        f"by {how} ({n}): {HOW[how]}" for how, n in fd.matched_by.items() if n) + ". The rest of the old "
        "findings are fixed, the rest of the new ones are new."]
    lines += _refs("Fixed", fd.fixed)
    lines += _refs("New", fd.new)
    moved = [m for m in fd.persisting if m.how != "id"]
    lines += ["", f"## Persisting under a new id ({len(moved)})", ""]
    if moved:
        lines += table(["check", "matched by", "overlap", "before", "after"],
                       [(m.old.check, m.how, fmt(m.overlap), m.old.message, m.new.message)
                        for m in moved[:MAX_LISTED]])
    else:
        lines.append("None.")
    lines += ["", "## Label counts", ""]
    if d.labels:
        lines += table(["label", "before", "after", "change"], _shift_rows(d.labels, 0, reference=False))
        if not d.labels_complete:
            lines += ["", "(Counts incomplete in at least one audit: an older run listed only the largest labels.)"]
    else:
        lines.append("Not recorded.")
    lines += ["", "## Style of the training rows", ""]
    if d.style:
        if d.style_distance_to_real is not None:
            s = d.style_distance_to_real
            lines += [f"Style distance to the real batch (0 = same style): {fmt(s.before)} -> {fmt(s.after)}.", ""]
        lines += table(["statistic", "before", "after", "change", "real"], _shift_rows(d.style, 3))
    else:
        lines.append("Not recorded.")
    lines += ["", "## Messy-input coverage (share of training rows)", ""]
    lines += table(["bucket", "before", "after", "change", "real"], _shift_rows(d.coverage, 3)) if d.coverage \
        else ["Not recorded."]
    lines += ["", "## Pilot gap", ""]
    if d.pilot:
        lines += [f"Held-out train accuracy minus {d.pilot_gap_against or 'real/eval'} accuracy of a tiny pilot "
                  "model; smaller is better.", ""]
        lines += table(["measure", "before", "after", "change"], _shift_rows(d.pilot, 3, reference=False))
    else:
        lines.append("Not measured (the pilot needs --eval or a labelled --real).")
    if d.notes:
        lines += ["", "## Notes", "", *(f"- {n}" for n in d.notes)]
    return "\n".join(lines) + "\n"


def write_diff(d: AuditDiff, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / DIFF_MD, "json": out_dir / DIFF_JSON}
    write_text(paths["json"], json.dumps(d.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n")
    write_text(paths["markdown"], render_diff(d))
    return paths
