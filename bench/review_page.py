"""Time to build and render review.html, and how well the large-data neighbour search matches an
exact one. Data: Banking77 and CLINC150 train (../shared/data), and bench/scale_data.py's scaled set.

    python bench/review_page.py --sizes 100000 [--shared ../shared/data]

The rows' neighbours are computed from scratch (no TF-IDF matrix from the label checks is reused):
the page's worst case. Recall compares the rare n-gram search with the exact search on 150 queries.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale_data
from audit_agent.checks import REGISTRY
from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.features import nearest
from audit_agent.report.review_page import render_review_page
from audit_agent.review.page_rows import review_labels, review_meta_from, review_rows_from


def _dataset(name: str, frame: pd.DataFrame) -> Dataset:
    frame = frame.rename(columns={"category": "label", "intent": "label"})[["text", "label"]].reset_index(drop=True)
    frame.insert(0, "id", [str(i) for i in range(len(frame))])
    return Dataset(Path(f"{name}.csv"), frame)


def _recall(texts: list[str], queries: list[int]) -> float:
    """Share of the exact top-3 (position, similarity) pairs the rare n-gram search also returns."""
    vectors = nearest.tfidf_vectors(texts)
    saved = nearest.EXACT_ROWS
    try:
        nearest.EXACT_ROWS = 10**12
        exact = nearest.nearest_rows(texts, queries, 3, vectors=vectors)
        nearest.EXACT_ROWS = 0
        approx = nearest.nearest_rows(texts, queries, 3, vectors=vectors)
    finally:
        nearest.EXACT_ROWS = saved
    found = sum(len(set(a) & set(e)) for a, e in zip(approx, exact, strict=True))
    return found / max(1, sum(len(e) for e in exact))


def measure(ds: Dataset) -> dict[str, object]:
    ctx = AuditContext(train=ds, config=AuditConfig())
    findings = REGISTRY["review_sample"].run(ctx)
    start = time.perf_counter()
    rows = review_rows_from(ctx, findings)
    build = time.perf_counter() - start
    start = time.perf_counter()
    html = render_review_page(rows, review_labels(ctx), review_meta_from(ctx, rows, findings))
    render = time.perf_counter() - start
    out: dict[str, object] = {"data": ds.path.stem, "rows": len(ds), "sampled": len(rows),
                              "build_s": round(build, 1), "render_s": round(render, 2),
                              "page_mb": round(len(html.encode()) / 1e6, 2)}
    if len(ds) > nearest.EXACT_ROWS:
        queries = np.random.default_rng(0).choice(len(ds), 150, replace=False).tolist()
        out["recall_at_3"] = round(_recall(ds.texts, queries), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000])
    parser.add_argument("--shared", type=Path, default=scale_data.SHARED, help="the shared data folder")
    args = parser.parse_args()
    scale_data.SHARED = shared = args.shared
    print(f"nproc {os.cpu_count()}, load {os.getloadavg()}", flush=True)
    sets = [_dataset("banking77", pd.read_csv(shared / "banking77" / "train.csv")),
            _dataset("clinc150", pd.read_csv(shared / "clinc150" / "train.csv"))]
    sets += [_dataset(f"scaled_{n}", scale_data.scaled(n, seed=0)) for n in args.sizes]
    for ds in sets:
        print(measure(ds), f"load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
