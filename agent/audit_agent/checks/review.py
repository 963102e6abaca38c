"""A balanced sample for a person to review: the same number of rows from every label, with
similar rows of a label placed side by side so inconsistent labelling is easy to spot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from audit_agent.checks.base import Check
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.findings import Evidence, Finding, RowId, Severity

MAX_REVIEW_ROWS = 2000
REVIEW_COLUMNS = ["id", "label", "text", "correct_label", "keep", "note"]
REVIEWER_COLUMNS = ["correct_label", "keep", "note"]


def _groups(ds: Dataset) -> tuple[np.ndarray, str]:
    """The stratum of every row: its label, else its task, else one group."""
    if ds.kind == "classification" and ds.has_labels:
        return ds.frame["label"].fillna("(none)").astype(str).to_numpy(), "label"
    if "task" in ds.frame.columns and ds.frame["task"].notna().any():
        return ds.frame["task"].fillna("(none)").astype(str).to_numpy(), "task"
    return np.full(len(ds), "(all)", dtype=object), "none"


def stratified_sample(groups: np.ndarray, per_group: int, seed: int) -> np.ndarray:
    """Row positions: up to `per_group` random rows of every group (O(n), seeded)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(groups))
    rank = pd.Series(groups[order]).groupby(groups[order], sort=False).cumcount().to_numpy()
    return np.sort(order[rank < per_group])


def neighbour_order(X: sp.csr_matrix) -> tuple[list[int], list[float]]:
    """A greedy nearest-neighbour chain over the L2-normalised rows of `X` (cosine): each next row is
    the unvisited row most similar to the current one. Returns the order and each row's similarity
    to the row before it (0 for the first)."""
    n = X.shape[0]
    if n <= 1:
        return list(range(n)), [0.0] * n
    sims = (X @ X.T).toarray()
    np.fill_diagonal(sims, -1.0)
    # start from the row with the closest neighbour, so the tightest pair leads
    current = int(sims.max(axis=1).argmax())
    order, prev_sim = [current], [0.0]
    visited = np.zeros(n, dtype=bool)
    visited[current] = True
    for _ in range(n - 1):
        row = np.where(visited, -2.0, sims[current])
        nxt = int(row.argmax())
        order.append(nxt)
        prev_sim.append(round(float(max(row[nxt], 0.0)), 4))
        visited[nxt] = True
        current = nxt
    return order, prev_sim


def _review_sample(ctx: AuditContext) -> list[Finding]:
    """Sample `checks.review_per_label` rows of every label (seeded), order each label's rows so near
    neighbours sit side by side, and hand the ordered row ids to the report (review_sample.csv)."""
    train = ctx.train
    if len(train) == 0:
        return []
    groups, stratum = _groups(train)
    n_groups = len(pd.unique(groups))
    per_group = ctx.config.checks.review_per_label
    if n_groups * per_group > MAX_REVIEW_ROWS:
        per_group = max(1, MAX_REVIEW_ROWS // n_groups)
    picked = stratified_sample(groups, per_group, ctx.config.seed)
    if len(picked) > MAX_REVIEW_ROWS:
        picked = np.sort(np.random.default_rng(ctx.config.seed).choice(picked, MAX_REVIEW_ROWS, replace=False))
    texts = dict(zip(picked.tolist(), train.frame["text"].iloc[picked].astype(str), strict=True))
    ids = dict(zip(picked.tolist(), train.frame["id"].iloc[picked].astype(str), strict=True))
    row_ids: list[RowId] = []
    row_groups: list[str] = []
    similarity: list[float] = []
    picked_groups = groups[picked]
    vectors = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True).fit_transform(
        [texts[int(i)] for i in picked]).tocsr()
    for group in sorted(pd.unique(picked_groups)):
        where = np.flatnonzero(picked_groups == group)
        members = picked[where]
        order, prev_sim = neighbour_order(vectors[where])
        row_ids += [ids[int(members[j])] for j in order]
        row_groups += [str(group)] * len(order)
        similarity += prev_sim
    close_pairs = int(sum(s >= 0.8 for s in similarity))
    return [Finding(
        check="review_sample", severity=Severity.INFO,
        message=(f"review sample: {len(row_ids)} rows, up to {per_group} from each of {n_groups} "
                 f"{'labels' if stratum == 'label' else 'groups'}, similar rows side by side "
                 f"({close_pairs} rows have a near twin right above them); fill in "
                 + ", ".join(REVIEWER_COLUMNS)),
        evidence={
            "row_ids": row_ids, "groups": row_groups, "similarity_to_previous": similarity,
            "stratify_by": stratum, "per_group": per_group, "n_groups": n_groups, "seed": ctx.config.seed,
            "columns": REVIEW_COLUMNS, "reviewer_columns": REVIEWER_COLUMNS, "file": "review_sample.csv",
        },
    )]


class ReviewSampleEvidence(Evidence):
    row_ids: list[RowId]
    groups: list[str]
    similarity_to_previous: list[float]
    stratify_by: str
    per_group: int
    n_groups: int
    seed: int
    columns: list[str]
    reviewer_columns: list[str]
    file: str

class ReviewSample(Check):
    """Sample `checks.review_per_label` rows of every label (seeded), order each label's rows so near
    neighbours sit side by side, and hand the ordered row ids to the report (review_sample.csv)."""

    name = "review_sample"
    description = "A balanced, neighbour-ordered sample of every label for human review"
    recommendation = ("Have a person label review_sample.csv (empty reviewer columns are included) to measure "
                      "how often the labels are wrong.")
    Evidence = ReviewSampleEvidence

    def run(self, ctx: AuditContext) -> list[Finding]:
        return _review_sample(ctx)

    def subject(self, f: Finding) -> str | None:
        return "review sample"

    def sample_rows(self, f: Finding) -> list[str]:
        """The sampled training row ids, in review order."""
        ev = self.evidence(f, ReviewSampleEvidence)
        return [str(r) for r in (ev.row_ids if ev is not None else f.rows)]

    def reviewer_columns(self, f: Finding) -> list[str]:
        ev = self.evidence(f, ReviewSampleEvidence)
        return list(ev.reviewer_columns) if ev is not None else list(REVIEWER_COLUMNS)
