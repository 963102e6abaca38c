"""What review.html shows, built from what a run has: the `review_sample` finding's ordered row ids,
the training rows, every other finding that names a sampled row (its notes) and the rows most similar
to each sampled row (its neighbours)."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import scipy.sparse as sp

from audit_agent.dataset import AuditContext
from audit_agent.features.nearest import nearest_rows
from audit_agent.findings import Finding
from audit_agent.io.atomic import write_text
from audit_agent.report.review_page import (
    REVIEW_PAGE_FILE,
    Neighbour,
    ReviewMeta,
    ReviewRow,
    render_review_page,
)

REVIEW_CHECK = "review_sample"
NEIGHBOURS = 3
MAX_NOTES = 8
NEIGHBOUR_CHARS = 600  # a neighbour's text is cut to this on the page (the reviewed row's never is)


def _sample(findings: Sequence[Finding]) -> Finding | None:
    return next((f for f in findings if f.check == REVIEW_CHECK and f.split == "train"), None)


def _sample_ids(sample: Finding) -> list[str]:
    ids = sample.evidence.get("row_ids")
    return [str(i) for i in (ids if isinstance(ids, list) else sample.rows)]


def _note(f: Finding) -> str:
    """One line about a finding, saying where it came from."""
    if f.source == "judge":
        reason = f.evidence.get("reason")
        return f.message + (f" (reason: {reason.strip()})" if isinstance(reason, str) and reason.strip() else "")
    return f"{f.check} ({f.severity.value}): {f.message}"


def _cut(text: str) -> str:
    return text if len(text) <= NEIGHBOUR_CHARS else text[:NEIGHBOUR_CHARS].rstrip() + " …"


def _notes_by_row(findings: Sequence[Finding], wanted: set[str]) -> dict[str, list[str]]:
    """Notes per sampled row id: judge findings first, then findings naming fewer rows (the most
    specific), at most MAX_NOTES each (the rest summed up in a last line)."""
    found: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for f in findings:
        if f.check == REVIEW_CHECK or f.split != "train":
            continue
        rank = (0 if f.source == "judge" else 1, len(f.rows))
        for rid in {str(r) for r in f.rows} & wanted:
            found[rid].append((*rank, _note(f)))
    notes: dict[str, list[str]] = {}
    for rid, items in found.items():
        ordered = [text for *_, text in sorted(items, key=lambda t: (t[0], t[1]))]
        extra = len(ordered) - MAX_NOTES
        notes[rid] = ordered[:MAX_NOTES] + ([f"(and {extra} more findings)"] if extra > 0 else [])
    return notes


def _run_vectors(ctx: AuditContext) -> sp.csr_matrix | None:
    """The training rows' TF-IDF matrix when the label checks already computed it (never computes it:
    a cached_property's value sits in the instance dict only once it has been computed)."""
    oof = vars(ctx.features).get("oof")
    X: Any = getattr(oof, "X", None)
    if X is None or not sp.issparse(X) or X.shape[0] != len(ctx.train):
        return None
    return sp.csr_matrix(X)


def review_rows_from(ctx: AuditContext, findings: Sequence[Finding], *, neighbours: int = NEIGHBOURS) -> list[ReviewRow]:
    """The rows of review.html in the sample's order (empty when the review_sample check did not run)."""
    sample = _sample(findings)
    if sample is None:
        return []
    frame = ctx.train.frame
    all_ids = frame["id"].astype(str).tolist()
    position: dict[str, int] = {}
    for pos, rid in enumerate(all_ids):
        position.setdefault(rid, pos)
    ids = [rid for rid in _sample_ids(sample) if rid in position]
    texts = frame["text"].astype(str).tolist()
    labels = frame["label"].fillna("").astype(str).tolist() if "label" in frame else [""] * len(frame)
    near = nearest_rows(texts, [position[rid] for rid in ids], neighbours, vectors=_run_vectors(ctx))
    notes = _notes_by_row(findings, set(ids))
    return [
        ReviewRow(id=rid, text=texts[position[rid]], label=labels[position[rid]], notes=notes.get(rid, []),
                  neighbours=[Neighbour(all_ids[p], _cut(texts[p]), labels[p], sim) for p, sim in close])
        for rid, close in zip(ids, near, strict=True)
    ]


def review_meta_from(ctx: AuditContext, rows: Sequence[ReviewRow], findings: Sequence[Finding]) -> ReviewMeta:
    """The page's header facts and the audit id its saved decisions are keyed by: a hash of the data
    file's name and the sampled ids and labels, so a rerun drawing the same sample keeps the work."""
    sample = _sample(findings)
    evidence = sample.evidence if sample is not None else {}
    key = json.dumps([ctx.train.path.name, [(r.id, r.label) for r in rows]], ensure_ascii=False)
    seed = evidence.get("seed")
    return ReviewMeta(
        audit_id=hashlib.sha1(key.encode("utf-8")).hexdigest()[:12],
        dataset=ctx.train.path.name,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        seed=seed if isinstance(seed, int) else None,
        stratify_by=str(evidence.get("stratify_by", "label")),
        train_rows=len(ctx.train),
    )


def review_labels(ctx: AuditContext) -> list[str]:
    """The labels the relabel picker offers: the training set's distinct class labels (none for
    target-text data, where a reviewer types the new target)."""
    return list(ctx.train.label_set)


def write_review_page(ctx: AuditContext, findings: Sequence[Finding], out_dir: Path) -> Path | None:
    """Write review.html into `out_dir` (atomically); None when there is no review sample."""
    rows = review_rows_from(ctx, findings)
    if not rows:
        return None
    path = out_dir / REVIEW_PAGE_FILE
    write_text(path, render_review_page(rows, review_labels(ctx), review_meta_from(ctx, rows, findings)))
    return path
