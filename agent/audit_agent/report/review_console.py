"""Console summaries of the review-loop commands (rich renderables; the CLI prints them)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from audit_agent.review.agree import Agreement
from audit_agent.review.apply import ApplyPlan
from audit_agent.review.diff import AuditDiff

VERDICT_COLOUR = {"good shape": "green", "tighten the rules": "yellow", "labels need work": "red"}


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def agreement_summary(r: Agreement, paths: dict[str, Path]) -> list[Table | str]:
    t = Table(title=f"agreement: {r.reviewer_a} vs {r.reviewer_b}")
    t.add_column("measure")
    t.add_column("value", justify="right")
    rate = "n/a" if r.ordinary_disagreement_rate is None else f"{r.ordinary_disagreement_rate:.1%}"
    for name, value in (("rows decided by both", str(r.n_compared)), ("observed agreement", _num(r.observed_agreement)),
                        ("Cohen's kappa", _num(r.kappa)), ("kappa on ordinary rows", _num(r.kappa_ordinary)),
                        ("disagreements", str(len(r.disagreements))),
                        ("on hard / flagged rows", f"{r.n_on_hard} / {r.n_on_flagged}"),
                        ("on ordinary rows", f"{r.n_ordinary_disagreements} of {r.n_ordinary_rows} ({rate})")):
        t.add_row(name, value)
    colour = VERDICT_COLOUR.get(r.verdict, "yellow")
    return [t, f"Verdict: [bold {colour}]{r.verdict}[/bold {colour}]: {r.verdict_reason}",
            f"Wrote {paths['markdown']} and {paths['json']}"]


def apply_summary(plan: ApplyPlan, paths: dict[str, Path]) -> list[Table | str]:
    counts = {a: sum(c.action == a for c in plan.changes) for a in ("drop", "relabel", "hard", "add")}
    return [f"{plan.rows_before} rows -> {plan.rows_after}: {counts['drop']} dropped, {counts['relabel']} relabelled, "
            f"{counts['hard']} kept and tagged hard, {counts['add']} added; {plan.kept} kept as they were, "
            f"{plan.undecided} undecided.",
            f"Wrote {paths['data']}, {paths['changelog_csv']} and {paths['changelog_md']}"]


def diff_summary(d: AuditDiff, paths: dict[str, Path]) -> list[Table | str]:
    fd = d.findings
    t = Table(title=f"audit diff: {Path(d.old).name} -> {Path(d.new).name}")
    for col in ("check", "before", "after", "fixed", "new", "persisting"):
        t.add_column(col, justify="left" if col == "check" else "right")
    for c in fd.per_check:
        t.add_row(c.check, str(c.before), str(c.after), str(c.fixed or ""), str(c.new or ""), str(c.persisting))
    r = d.rows
    rows = (f"Rows {r.before} -> {r.after}: {r.added} added, {r.removed} removed, {r.relabelled} relabelled "
            f"(matched by {r.matched_by})" if r.available else "Rows: not available (see diff.md notes)")
    gap = next((s for s in d.pilot if s.name == "gap"), None)
    out: list[Table | str] = [t, rows + ".",
                              f"Findings {d.findings_before} -> {d.findings_after}: {len(fd.fixed)} fixed, "
                              f"{len(fd.new)} new, {len(fd.persisting)} persisting; verdict {d.verdict_before} -> "
                              f"{d.verdict_after}."]
    if gap is not None:
        out.append(f"Pilot gap ({d.pilot_gap_against}): {_num(gap.before, 3)} -> {_num(gap.after, 3)}.")
    out.append(f"Wrote {paths['markdown']} and {paths['json']}")
    return out
