"""A real review.html for tests: the bundled fixtures/support/train.csv plus a few hostile rows, run
through the real checks (review_sample, duplicates, label_issue), rendered by the real page code.

    page = build_review_page(tmp_path)        # ReviewPageFixture
    page.path.as_uri()                        # open it in a browser
    page.rows, page.labels, page.meta         # what the page shows, in order

The hostile rows get their own label (itself hostile markup), so every one of them is sampled.
The one judge-sourced finding is written here (no model runs in tests); it only shows how a judge
note reaches the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from audit_agent.checks import REGISTRY
from audit_agent.checks.judge_verdicts import JudgeEvidence
from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.findings import Finding, Severity
from audit_agent.io.atomic import write_text
from audit_agent.io.loader import load_dataset
from audit_agent.report.review_page import REVIEW_PAGE_FILE, render_review_page
from audit_agent.review.page_rows import (
    ReviewMeta,
    ReviewRow,
    review_labels,
    review_meta_from,
    review_rows_from,
)
from tests.fakes import evidence

ROOT = Path(__file__).resolve().parents[1]
SUPPORT_TRAIN = ROOT / "fixtures" / "support" / "train.csv"
CHECKS = ("review_sample", "exact_duplicate", "near_duplicate", "label_issue")
HOSTILE_LABEL = "<img src=x onerror=\"window.__pwned='label'\">"
HOSTILE_ROWS = [
    ("h1", "</script><script>window.__pwned='script'</script> my order never came", HOSTILE_LABEL),
    ("h2", "<img src=x onerror=\"window.__pwned='img'\"> where is my <b>parcel</b>?", HOSTILE_LABEL),
    ("h3", "a \"quoted\" word, a comma,\nA new line, a line separator\u2028and <!-- a comment --> &amp; done",
     HOSTILE_LABEL),
]


@dataclass
class ReviewPageFixture:
    path: Path
    rows: list[ReviewRow]
    labels: list[str]
    meta: ReviewMeta
    findings: list[Finding]


def support_with_hostile_rows(out_dir: Path) -> Path:
    """fixtures/support/train.csv with HOSTILE_ROWS appended, written to `out_dir`."""
    frame = pd.read_csv(SUPPORT_TRAIN, dtype=str, keep_default_na=False)
    hostile = pd.DataFrame(HOSTILE_ROWS, columns=["id", "text", "label"])
    path = out_dir / "train.csv"
    pd.concat([frame, hostile], ignore_index=True).to_csv(path, index=False)
    return path


def run_checks(ctx: AuditContext) -> list[Finding]:
    """The checks that name sampled rows, plus one judge-shaped finding on the first sampled row."""
    findings = [f for name in CHECKS for f in REGISTRY[name].run(ctx)]
    sample = next(f for f in findings if f.check == "review_sample")
    first = str(sample.evidence["row_ids"][0])
    label = str(ctx.train.frame.set_index("id").at[first, "label"])
    findings.append(Finding(
        check="judge_ambiguous", severity=Severity.LOW, source="judge", verified=False, rows=[first],
        labels=[label], message=f"Judge (unverified claim): row {first} labelled '{label}' is ambiguous",
        evidence=evidence(JudgeEvidence, verdict="ambiguous", given_label=label, best_label=label,
                          reason="the text names two problems")))
    return findings


def build_review_page(out_dir: Path, *, per_label: int = 7, hostile: bool = True) -> ReviewPageFixture:
    """Render review.html into `out_dir` from the support data (with hostile rows unless told not to)."""
    data = support_with_hostile_rows(out_dir) if hostile else SUPPORT_TRAIN
    ctx = AuditContext(train=load_dataset(data, id_col="id"),
                       config=AuditConfig.model_validate({"seed": 0, "checks": {"review_per_label": per_label}}))
    findings = run_checks(ctx)
    rows = review_rows_from(ctx, findings)
    labels = review_labels(ctx)
    meta = review_meta_from(ctx, rows, findings)
    path = out_dir / REVIEW_PAGE_FILE
    write_text(path, render_review_page(rows, labels, meta))
    return ReviewPageFixture(path, rows, labels, meta, findings)
