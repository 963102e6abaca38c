"""Write the review loop's files atomically: agreement.md/.json (two reviewers compared), the next dataset
version with changelog.csv/.md (decisions applied), and rows.parquet (row fingerprints of a run, for
comparing audits). Layout only: the numbers come from review/."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from audit_agent.dataset import Dataset
from audit_agent.io.atomic import write_text, write_with
from audit_agent.review.agree import Agreement
from audit_agent.review.apply import ApplyPlan, plan_apply
from audit_agent.review.reviewer_csv import ReviewFile
from audit_agent.review.run_facts import ROWS_FILE, row_fingerprints

AGREEMENT_MD = "agreement.md"
AGREEMENT_JSON = "agreement.json"
CHANGELOG_CSV = "changelog.csv"
CHANGELOG_MD = "changelog.md"
CHANGELOG_COLUMNS = ["id", "next_id", "action", "old_label", "new_label", "hard", "decision", "note", "reviewer",
                     "source", "source_row", "also_in", "text"]
MAX_MD_ROWS = 300


def cell(value: object, limit: int = 160) -> str:
    """One markdown table cell: one line, pipes escaped, cut to `limit` characters."""
    flat = " ".join(str("" if value is None else value).split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return flat.replace("|", "\\|")


def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return out


# ---------------------------------------------------------------- agreement


def render_agreement(r: Agreement) -> str:
    t = r.thresholds
    rate = "n/a" if r.ordinary_disagreement_rate is None else f"{r.ordinary_disagreement_rate:.1%}"
    share = "" if r.ordinary_share_of_disagreements is None else \
        f"; {r.ordinary_share_of_disagreements:.0%} of all disagreements"
    lines = ["# Reviewer agreement", "",
             f"- A: `{r.file_a}` ({r.reviewer_a})", f"- B: `{r.file_b}` ({r.reviewer_b})", "",
             f"**Verdict: {r.verdict}.** {r.verdict_reason}", ""]
    lines += table(["measure", "value"], [
        ("rows in both files", r.n_rows),
        *([("rows in one file only (skipped)", r.n_skipped)] if r.n_skipped else []),
        ("rows left undecided by either reviewer (not compared)", r.n_undecided),
        ("rows decided by both (compared; a drop is the category (drop))", r.n_compared),
        ("observed agreement", fmt(r.observed_agreement, 3)),
        ("Cohen's kappa, all compared rows", fmt(r.kappa, 3)),
        ("Cohen's kappa, ordinary rows (the verdict reads this)", fmt(r.kappa_ordinary, 3)),
        ("disagreements", len(r.disagreements)),
        ("... on rows marked hard by either reviewer", r.n_on_hard),
        ("... on rows flagged by the checks" + (f" ({r.flagged_source})" if r.flagged_source else " (no --findings)"),
         r.n_on_flagged),
        ("... on ordinary rows", f"{r.n_ordinary_disagreements} of {r.n_ordinary_rows} ordinary rows ({rate}{share})"),
    ])
    lines += ["", f"Ordinary rows: neither reviewer marked them hard and no label check flagged them. Thresholds "
                  f"(kappa on ordinary rows): >= {t.kappa_good} good shape, {t.kappa_fair}-{t.kappa_good} tighten the "
                  f"rules, below {t.kappa_fair} the labels need work; no disagreement on ordinary rows is good shape; "
                  f"fewer than {t.min_compared} ordinary rows is too few to judge (docs/review.md).", ""]
    lines += ["## Per label", "", "One-vs-rest kappa: both reviewers' answers reduced to \"this label or not\"; "
              "n/a where undefined (the label used by neither, or on every row by both).", ""]
    lines += table(["label", "kappa", "A used", "B used", "both"],
                   [(p.label, fmt(p.kappa, 3), p.n_a, p.n_b, p.n_both) for p in r.per_label])
    if r.confusion_labels:
        lines += ["", "## Confusion table", "", "Rows: reviewer A's label; columns: reviewer B's label.", ""]
        lines += table(["A \\ B", *r.confusion_labels],
                       [(lab, *row) for lab, row in zip(r.confusion_labels, r.confusion, strict=True)])
    lines += ["", f"## Disagreements ({len(r.disagreements)})", ""]
    if r.disagreements:
        shown = r.disagreements[:MAX_MD_ROWS]
        lines += table(["id", "text", "given", "A", "B", "hard", "flagged", "note A", "note B"],
                       [(d.id, d.text, d.label, d.a, d.b, "yes" if d.hard else "", "yes" if d.flagged else "",
                         d.note_a, d.note_b) for d in shown])
        if len(r.disagreements) > len(shown):
            lines += ["", f"({len(r.disagreements) - len(shown)} more in agreement.json)"]
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"


def write_agreement(r: Agreement, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / AGREEMENT_MD, "json": out_dir / AGREEMENT_JSON}
    write_text(paths["json"], json.dumps(r.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n")
    write_text(paths["markdown"], render_agreement(r))
    return paths


# ---------------------------------------------------------------- apply


def changelog_frame(plan: ApplyPlan) -> pd.DataFrame:
    rows = [{**c.model_dump(), "source": Path(c.source).name, "also_in": "; ".join(c.also_in),
             "hard": "true" if c.hard else "false"} for c in plan.changes]
    return pd.DataFrame(rows, columns=CHANGELOG_COLUMNS)


def render_changelog(plan: ApplyPlan, out: Path) -> str:
    counts = {a: sum(c.action == a for c in plan.changes) for a in ("drop", "relabel", "hard", "add")}
    tagged = len(plan.hard) + sum(a.hard for a in plan.added)
    lines = [f"# Changelog: {Path(plan.data).name} -> {out.name}", "",
             f"{plan.rows_before} rows -> {plan.rows_after} rows. Decisions from: "
             + ", ".join(f"`{Path(f).name}`" for f in plan.files) + ".", ""]
    lines += table(["change", "rows"], [
        ("dropped", counts["drop"]), ("relabelled", counts["relabel"]), ("kept, tagged hard", counts["hard"]),
        ("added (accepted paraphrases)", counts["add"]), ("rows tagged hard in total (`hard` column)", tagged),
        ("reviewed and kept as they were", plan.kept), ("left undecided in the files", plan.undecided)])
    lines += ["", "## Changes", ""]
    shown = plan.changes[:MAX_MD_ROWS]
    lines += table(["id", "new id", "what", "from", "to", "hard", "why", "who", "source"],
                   [(c.id, c.next_id, c.action, c.old_label, c.new_label, "yes" if c.hard else "",
                     c.note or c.decision, c.reviewer, f"{Path(c.source).name} row {c.source_row}")
                    for c in shown])
    if len(plan.changes) > len(shown):
        lines += ["", f"({len(plan.changes) - len(shown)} more in {CHANGELOG_CSV})"]
    return "\n".join(lines) + "\n"


def apply_decisions(ds: Dataset, files: Sequence[ReviewFile], out: Path, *, allow_new_labels: bool = False
                    ) -> tuple[ApplyPlan, dict[str, Path]]:
    """Check every decision, then write the next version to `out` and changelog.csv/.md beside it.
    Nothing is written when a check fails."""
    from audit_agent.io.dataset_writer import check_out_path, read_raw, write_version

    check_out_path(ds, out)
    raw = read_raw(ds)
    plan = plan_apply(ds, files, allow_new_labels=allow_new_labels, n_raw_rows=raw.n_rows)
    write_version(raw, out, drop=plan.drop, relabel=plan.relabel, hard=plan.hard, added=plan.added)
    paths = {"data": out, "changelog_csv": out.parent / CHANGELOG_CSV, "changelog_md": out.parent / CHANGELOG_MD}
    frame = changelog_frame(plan)
    write_with(paths["changelog_csv"], lambda tmp: frame.to_csv(tmp, index=False))
    write_text(paths["changelog_md"], render_changelog(plan, out))
    return plan, paths


# ---------------------------------------------------------------- run


def write_row_fingerprints(ds: Dataset, out_dir: Path) -> Path:
    """rows.parquet: id, text_sha1, label of every training row, for `audit-agent diff`."""
    path = out_dir / ROWS_FILE
    frame = row_fingerprints(ds)
    write_with(path, lambda tmp: frame.to_parquet(tmp, index=False))
    return path
