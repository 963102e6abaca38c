"""Write a `StressResult`: stress.md (the table per variant kind, the worst failures quoted, what was
dropped and why) and stress.json (the whole result, every variant included). Layout only."""

from __future__ import annotations

from pathlib import Path

from audit_agent.io.atomic import write_json, write_text
from audit_agent.jobs.stress_result import DROP_REASONS, KindScore, StressResult

QUOTE_CHARS = 300


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _drop(value: float | None) -> str:
    return "-" if value is None else f"{-value:+.1%}"


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return (text[:QUOTE_CHARS] + " [...]") if len(text) > QUOTE_CHARS else text


def _cell(text: str) -> str:
    return _quote(text).replace("|", "\\|").replace("`", "'")


def _row(s: KindScore) -> str:
    dropped = ", ".join(f"{n} {reason}" for reason, n in s.dropped.items()) or "-"
    unanswered = f" ({s.unanswered} unanswered)" if s.unanswered else ""
    return (f"| {s.kind} | {s.made} | {s.scored}{unanswered} | {_pct(s.accuracy)} | {_pct(s.clean_accuracy)} | "
            f"{_drop(s.drop)} | {s.unknown_labels} | {dropped} |")


def render_markdown(result: StressResult) -> str:
    """stress.md: the score table, the worst failures per kind, drop reasons, invented labels, notes."""
    lines = [f"# Stress test: {result.model}", "",
             f"{result.rows} eval rows, {len(result.labels)} labels; every variant was checked to keep its "
             f"label by the checker ({result.checker}) before it was counted. Accuracy is on the kept, "
             "answered variants; *clean* is the accuracy on the clean texts of the same rows; *change* is "
             "the accuracy change from clean.", "",
             "| variant | made | scored | accuracy | clean | change | invented labels | dropped |",
             "|---|---:|---:|---:|---:|---:|---:|---|",
             f"| clean | {result.clean.made} | {result.clean.scored}"
             + (f" ({result.clean.unanswered} unanswered)" if result.clean.unanswered else "")
             + f" | {_pct(result.clean.accuracy)} | | | {result.clean.unknown_labels} | |"]
    lines += [_row(s) for s in result.per_kind]
    worst = sorted((s for s in result.per_kind if s.drop is not None), key=lambda s: -(s.drop or 0.0))
    if worst and (worst[0].drop or 0.0) > 0:
        lines += ["", f"Largest drop: **{worst[0].kind}** ({_drop(worst[0].drop)} from clean)."]
    lines += ["", "## Worst failures", "",
              "Variants the model got wrong although it got the same row's clean text right, those the "
              "checker is surest still carry their label first."]
    if not result.failures:
        lines += ["", "None."]
    for kind in result.kinds:
        shown = [f for f in result.failures if f.kind == kind]
        if not shown:
            continue
        lines += ["", f"### {kind}", ""]
        for f in shown:
            p = "" if f.checker_p is None else f" (checker p={f.checker_p:.2f})"
            lines += [f"- row `{f.row_id}`, label `{f.label}`, the model said `{_cell(f.predicted)}`{p}",
                      f"  - clean: {_cell(f.clean_text)}", f"  - variant: {_cell(f.text)}"]
    lines += ["", "## Dropped variants", "", "| reason | count | meaning |", "|---|---:|---|"]
    for reason, meaning in DROP_REASONS.items():
        count = sum(s.dropped.get(reason, 0) for s in result.per_kind)
        lines.append(f"| {reason} | {count} | {meaning} |")
    if result.unknown_predictions:
        lines += ["", "## Labels the model invented (counted as wrong)", "", "| answer | times |", "|---|---:|"]
        lines += [f"| `{_cell(answer)}` | {n} |" for answer, n in result.unknown_predictions.items()]
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result.notes]
    if result.usage:
        usage = ", ".join(f"{k} {v:g}" for k, v in result.usage.items())
        lines += ["", f"Model usage: {usage}. Took {result.seconds:.1f} s."]
    return "\n".join(lines) + "\n"


def write_stress_outputs(result: StressResult, out_dir: Path) -> tuple[Path, Path]:
    """Write stress.md and stress.json into `out_dir` (atomically); return their paths."""
    md, js = out_dir / "stress.md", out_dir / "stress.json"
    write_json(js, result.model_dump(mode="json"))
    write_text(md, render_markdown(result))
    return md, js
