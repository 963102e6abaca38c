"""A 100,000-row audit with the embedding layer on: the deterministic checks, then the embedding
layer and every meaning-level analysis, in one process; wall time per step and peak RSS.

    python bench/embed_scale.py --rows 100000 --max-rows 50000

Data as in bench/speed.py (Banking77 + CLINC150 replicated with perturbations, a 2,000-row eval
split, a 50-row real batch). The vector cache is a fresh temporary folder unless --cache is given,
so every row is really encoded. Until the checks are wired, this runs the analyses the way the
checks will call them (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale_data
import speed
from audit_agent.api import load_context, run_checks, select_checks
from audit_agent.config import AuditConfig
from audit_agent.features.label_signals import detect_label_issues
from audit_agent.features.semantic import paraphrase_conflicts, semantic_duplicates
from audit_agent.features.semantic_gap import embedding_separability, encoder_pilot, uncovered_real_rows
from speed import prepare

if not scale_data.SHARED.exists():  # a checkout beside the data folder's usual place
    scale_data.SHARED = speed.SHARED = Path("/work/shared/data")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--max-rows", type=int, default=100_000)
    ap.add_argument("--backend", default="onnx")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--skip-lexical", action="store_true", help="only the embedding layer and its analyses")
    args = ap.parse_args()
    files = prepare(args.rows)
    cache = args.cache or Path(tempfile.mkdtemp(prefix="embed-scale-"))
    config = AuditConfig.model_validate({"embeddings": {"enabled": "on", "max_rows": args.max_rows,
                                                        "backend": args.backend, "cache_dir": str(cache)}})
    print(f"nproc {os.cpu_count()}, load at start {os.getloadavg()}", flush=True)
    steps: list[tuple[str, float]] = []
    start = time.perf_counter()

    def step(name: str, t: float) -> None:
        steps.append((name, time.perf_counter() - t))
        print(f"{name}: {steps[-1][1]:.1f} s (load {os.getloadavg()[0]:.1f})", flush=True)

    t = time.perf_counter()
    ctx = load_context(files["train"], files["eval"], files["real"], config=config)
    step("load", t)
    if not args.skip_lexical:
        t = time.perf_counter()
        run_checks(ctx, select_checks([], []))
        step("deterministic checks (lexical)", t)
    layer = ctx.features.embeddings
    assert layer is not None
    t = time.perf_counter()
    train, real, ev = layer.train, layer.split("real"), layer.split("eval")
    assert real is not None and ev is not None
    step(f"embed train ({len(train.ids)} of {train.total_rows} rows) + eval + real", t)
    t = time.perf_counter()
    groups = paraphrase_conflicts(train.vectors, train.labels, train.ids)
    step(f"paraphrase_conflicts ({len(groups)} groups)", t)
    t = time.perf_counter()
    res = detect_label_issues(ctx.features.oof, with_cleanlab=False, embeddings=train.vectors,
                              embedding_rows=train.positions)
    step(f"detect_label_issues + embedding vote ({int(res.flagged.sum())} flagged)", t)
    t = time.perf_counter()
    cov = uncovered_real_rows(train.vectors, real.vectors, real.ids, train.ids, real_labels=real.labels,
                              train_labels=train.labels)
    sep = embedding_separability(train.vectors, real.vectors)
    step(f"coverage ({cov.uncovered} uncovered) + separability (AUC {sep.auc if sep else float('nan'):.2f})", t)
    t = time.perf_counter()
    pilot = encoder_pilot(train.vectors, train.labels, {"eval": (ev.vectors, ev.labels), "real": (real.vectors, real.labels)})
    step(f"encoder_pilot ({pilot.scores if pilot else None})", t)
    t = time.perf_counter()
    dups = semantic_duplicates(train.vectors, train.labels, train.ids)
    step(f"semantic_duplicates ({len(dups)} groups)", t)
    total = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(f"\n{args.rows} rows, max_rows {args.max_rows}, backend {args.backend}: total {total:.0f} s, "
          f"peak RSS {rss:.2f} GB, load at end {os.getloadavg()}")
    for note in filter(None, [train.note]):
        print("note:", note)


if __name__ == "__main__":
    main()
