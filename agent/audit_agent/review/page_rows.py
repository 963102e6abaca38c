"""What review.html shows, built from what a run has: the `review_sample` finding's ordered row ids,
the training rows, every other finding that names a sampled row (its notes) and the rows most similar
to each sampled row (its neighbours)."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, Field

from audit_agent.checks.judge_verdicts import JudgeEvidence
from audit_agent.checks.review import ReviewSample, ReviewSampleEvidence
from audit_agent.context import AuditContext
from audit_agent.features.nearest import nearest_rows
from audit_agent.findings import Finding

REVIEW_CHECK = "review_sample"
class Neighbour(NamedTuple):
    """A training row similar to a reviewed row (`similarity`: cosine in [0, 1])."""

    id: str
    text: str
    label: str
    similarity: float


class ReviewRow(BaseModel):
    """One row to review: its text and label, what the checks and the judge said about it, and the
    most similar training rows."""

    id: str
    text: str
    label: str
    notes: list[str] = Field(default_factory=list)
    neighbours: list[Neighbour] = Field(default_factory=list)


class ReviewMeta(BaseModel):
    """What the page says about the audit. `audit_id` keys the browser's saved decisions: the same
    sample of the same data gets the same id, so a re-rendered page keeps the reviewer's work."""

    audit_id: str
    dataset: str
    created_at: str = ""
    seed: int | None = None
    stratify_by: str = "label"
    train_rows: int | None = None


REVIEW_SAMPLE = ReviewSample()
NEIGHBOURS = 3
MAX_NOTES = 8
NEIGHBOUR_POOL = 200_000  # above this many training rows, neighbours come from a seeded sample of them
NEIGHBOUR_CHARS = 600  # a neighbour's text is cut to this on the page (the reviewed row's never is)


def _sample(findings: Sequence[Finding]) -> Finding | None:
    return next((f for f in findings if f.check == REVIEW_CHECK and f.split == "train"), None)


def _sample_ids(sample: Finding) -> list[str]:
    return REVIEW_SAMPLE.sample_rows(sample)


def _note(f: Finding) -> str:
    """One line about a finding, saying where it came from."""
    if f.source == "judge":
        reason = f.evidence.reason.strip() if isinstance(f.evidence, JudgeEvidence) else ""
        return f.message + (f" (reason: {reason})" if reason else "")
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
    """The training rows' TF-IDF matrix when the label checks already computed it (never computes it)."""
    oof = ctx.features.oof_if_computed()
    X: Any = getattr(oof, "X", None)
    if X is None or not sp.issparse(X) or X.shape[0] != len(ctx.train):
        return None
    return sp.csr_matrix(X)


def _neighbours(ctx: AuditContext, texts: list[str], queries: list[int], k: int,
                pool: int) -> list[list[tuple[int, float]]]:
    """`nearest_rows` over all training rows, or, above `pool` rows, over a seeded uniform sample of
    `pool` of them plus the queried rows (memory that grows with the data stays bounded); positions
    are the training set's either way."""
    vectors = _run_vectors(ctx)
    if len(texts) <= pool:
        return nearest_rows(texts, queries, k, vectors=vectors)
    rng = np.random.default_rng(ctx.config.seed)
    keep = np.union1d(rng.choice(len(texts), size=pool, replace=False), np.asarray(queries, dtype=np.int64))
    local = {int(p): i for i, p in enumerate(keep)}
    near = nearest_rows([texts[int(p)] for p in keep], [local[q] for q in queries], k,
                        vectors=vectors[keep] if vectors is not None else None)
    return [[(int(keep[i]), sim) for i, sim in close] for close in near]


def review_rows_from(ctx: AuditContext, findings: Sequence[Finding], *, neighbours: int = NEIGHBOURS,
                     pool: int = NEIGHBOUR_POOL) -> list[ReviewRow]:
    """The rows of review.html in the sample's order (empty when the review_sample check did not run);
    each row's `neighbours` most similar training rows (among `pool` sampled rows on larger sets)."""
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
    near = _neighbours(ctx, texts, [position[rid] for rid in ids], neighbours, pool)
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
    evidence = sample.evidence if sample is not None and isinstance(sample.evidence, ReviewSampleEvidence) else None
    key = json.dumps([ctx.train.path.name, [(r.id, r.label) for r in rows]], ensure_ascii=False)
    seed = evidence.seed if evidence is not None else None
    return ReviewMeta(
        audit_id=hashlib.sha1(key.encode("utf-8")).hexdigest()[:12],
        dataset=ctx.train.path.name,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        seed=seed if isinstance(seed, int) else None,
        stratify_by=evidence.stratify_by if evidence is not None else "label",
        train_rows=len(ctx.train),
    )


def review_labels(ctx: AuditContext) -> list[str]:
    """The labels the relabel picker offers: the training set's distinct class labels (none for
    target-text data, where a reviewer types the new target)."""
    return list(ctx.train.label_set)
