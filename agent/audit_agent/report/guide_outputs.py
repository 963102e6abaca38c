"""Write the guide job's outputs: revised_guide.md, revised_guide.diff (against the old
guide, or against the bare label list when there was none), relabel_candidates.csv and
guide_verification.csv. No logic beyond layout."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from audit_agent.io.atomic import write_text, write_with
from audit_agent.jobs.guide import GuideResult

GUIDE_FILE = "revised_guide.md"
DIFF_FILE = "revised_guide.diff"
RELABEL_FILE = "relabel_candidates.csv"
CHECKS_FILE = "guide_verification.csv"


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


def write_guide_outputs(out_dir: Path, result: GuideResult) -> dict[str, Path]:
    """Write the four files atomically; returns their paths by kind."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"guide": out_dir / GUIDE_FILE, "diff": out_dir / DIFF_FILE, "relabel": out_dir / RELABEL_FILE,
             "checks": out_dir / CHECKS_FILE}
    write_text(paths["guide"], result.markdown)
    write_text(paths["diff"], guide_diff(result.old_text, result.markdown, result.label_set))
    write_with(paths["relabel"], lambda p: result.relabel.to_csv(p, index=False))
    check_frame = pd.DataFrame([asdict(c) for c in result.checks], columns=["item", "rule", "passed", "detail"])
    write_with(paths["checks"], lambda p: check_frame.to_csv(p, index=False))
    return paths
