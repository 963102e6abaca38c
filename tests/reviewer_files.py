"""Reviewer CSVs written the way a person fills them in, for the review-loop tests."""

from __future__ import annotations

import csv
from pathlib import Path

from audit_agent.review.reviewer_csv import REVIEWER_CSV_COLUMNS


def write_reviewer_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    """`rows` as a reviewer CSV at `path` (every reviewer column, blank where a row has no value)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=REVIEWER_CSV_COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({c: r.get(c, "") for c in REVIEWER_CSV_COLUMNS})
    return path
