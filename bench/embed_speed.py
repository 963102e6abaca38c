"""Speed of the embedding backends side by side, and whether they keep the same neighbours; and
the nearest-neighbour index choice at 100,000 rows.

    python bench/embed_speed.py                 # backends on 10,000 Banking77+CLINC150 rows
    python bench/embed_speed.py --index         # exact vs faiss IVF vs faiss HNSW at 100,000 rows

Backends: every backend of `audit_agent.features.embeddings` (torch, torch-int8, onnx, onnx-int8,
onnx-int8-block, openvino) encodes the same rows without the cache, in `--rounds` interleaved rounds (the
machine is shared: the median round counts). "Same neighbours": for 2,000 rows (`--agree-rows`), the share
of each row's 10 nearest neighbours (by the torch vectors, or by the first backend named when torch is not
run) that the backend's vectors also rank in the top 10, and the share with the same first neighbour;
"near ties": of the rows whose first neighbour changes, those whose two candidates are within 0.01
cosine of each other by the reference vectors (with the largest such gap).
Index: 100,000 vectors (the rows' torch vectors plus seeded noise copies), 10 neighbours each; recall@10
against exact search on 2,000 sampled queries.
Data is read from /work/shared/data at run time; results are printed as a markdown table.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from audit_agent.config import EmbeddingConfig
from audit_agent.features.embeddings import BACKENDS, Encoder, TextEmbedder, model_dir
from audit_agent.features.vector_index import _exact, knn

DATA = Path("/work/shared/data")
ROOT = Path(__file__).resolve().parents[1]


def texts(n: int) -> list[str]:
    frames = [pd.read_csv(DATA / "banking77/train.csv").text, pd.read_csv(DATA / "clinc150/train.csv").text]
    allt = pd.concat(frames).astype(str).drop_duplicates().tolist()
    rng = np.random.default_rng(0)
    return [allt[i] for i in rng.choice(len(allt), size=min(n, len(allt)), replace=False)]


def neighbour_changes(ref: np.ndarray, other: np.ndarray, k: int = 10, n: int = 2000
                      ) -> tuple[float, float, np.ndarray]:
    """Top-k overlap, share with the same first neighbour, and for each row whose first neighbour
    changes, the reference cosine of its reference first neighbour minus that of its new one."""
    sub = slice(0, min(n, len(ref)))
    a, _ = _exact(ref[sub], ref[sub], k, True)
    b, _ = _exact(other[sub], other[sub], k, True)
    overlap = np.mean([len(set(x) & set(y)) / k for x, y in zip(a.tolist(), b.tolist(), strict=True)])
    rows = np.flatnonzero(a[:, 0] != b[:, 0])
    vecs = ref[sub]
    gaps = (vecs[rows] * (vecs[a[rows, 0]] - vecs[b[rows, 0]])).sum(axis=1)
    return float(overlap), float((a[:, 0] == b[:, 0]).mean()), gaps


def backends(n: int, rounds: int, threads: int, cache: Path, names: list[str], batch: int, agree: int) -> None:
    rows = texts(n)
    folder = model_dir(cache)
    encoders = {}
    for b in names:
        t = time.perf_counter()
        encoders[b] = Encoder(folder, backend=b, threads=threads, batch_size=batch)
        encoders[b].encode(rows[:32])  # warm-up
        print(f"{b}: loaded in {time.perf_counter() - t:.1f} s (onnx: once, the export)", flush=True)
    times: dict[str, list[float]] = {b: [] for b in names}
    cpu: dict[str, list[float]] = {b: [] for b in names}
    vecs: dict[str, np.ndarray] = {}
    for r in range(rounds):
        for b in names:
            load = os.getloadavg()[0]
            t, c = time.perf_counter(), time.process_time()
            vecs[b] = encoders[b].encode(rows)
            times[b].append(time.perf_counter() - t)
            cpu[b].append(time.process_time() - c)
            print(f"round {r + 1} {b}: {times[b][-1]:.1f} s, CPU {cpu[b][-1]:.1f} s (load {load:.1f})", flush=True)
    print(f"\n{len(rows)} rows, {threads} threads, batch {batch}, {os.cpu_count()} cores\n")
    ref = "torch" if "torch" in vecs else names[0]  # the reference the neighbours are compared with
    print(f"| backend | rounds s | median s | best s | rows/s (median) | median CPU s | time / {ref} (each round) | "
          "top-10 neighbours kept | same 1st neighbour | "
          f"rows with another 1st neighbour | of them near ties (<= 0.01) | largest {ref} gap among them | "
          f"min cosine to {ref} |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for b in names:
        overlap, first, gaps = neighbour_changes(vecs[ref], vecs[b], n=agree)
        med = statistics.median(times[b])
        cos = float((vecs[b] * vecs[ref]).sum(axis=1).min())
        each = " / ".join(f"{t:.1f}" for t in times[b])
        ratios = " / ".join(f"{t / r:.2f}" for t, r in zip(times[b], times[ref], strict=True))
        largest = f"{gaps.max():.4f}" if len(gaps) else "-"
        print(f"| {b} | {each} | {med:.1f} | {min(times[b]):.1f} | {len(rows) / med:.0f} | {statistics.median(cpu[b]):.1f} | "
              f"{ratios} | {overlap:.3f} | {first:.3f} | {len(gaps)} | {int((gaps <= 0.01).sum())} | {largest} | {cos:.4f} |")


def index(n: int, cache: Path) -> None:
    import faiss

    base = TextEmbedder(cache, backend="torch")(texts(40_000))
    rng = np.random.default_rng(0)
    reps = [base] + [base + rng.normal(scale=0.03, size=base.shape).astype(np.float32) for _ in range(n // len(base))]
    vecs = np.vstack(reps)[:n]
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    queries = rng.choice(n, size=2000, replace=False)
    truth, _ = _exact(vecs, vecs[queries], 11, False)
    results = []

    def recall(found: np.ndarray) -> float:
        return float(np.mean([len(set(t[1:]) & set(f)) / 10 for t, f in zip(truth.tolist(), found.tolist(), strict=True)]))

    t = time.perf_counter()
    _exact(vecs, vecs[:5000], 10, True)
    results.append(("exact blocked matmul (all pairs; extrapolated from 5,000 queries)", (time.perf_counter() - t) * n / 5000, 1.0))
    t = time.perf_counter()
    idx, _ = knn(vecs, 10, exact_max_rows=0)
    results.append(("faiss IVF (knn default above 30,000 rows)", time.perf_counter() - t, recall(idx[queries])))
    t = time.perf_counter()
    h = faiss.IndexHNSWFlat(vecs.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    h.hnsw.efConstruction = 80
    h.add(vecs)
    h.hnsw.efSearch = 64
    _, hidx = h.search(vecs, 11)
    hidx = np.array([[j for j in row if j != i][:10] for i, row in enumerate(hidx.tolist())])
    results.append(("faiss HNSW (M=32, efSearch=64)", time.perf_counter() - t, recall(hidx[queries])))
    print(f"\n{n} vectors x {vecs.shape[1]}, 10 neighbours of every vector, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB\n")
    print("| index | seconds (build + search all) | recall@10 |\n|---|---|---|")
    for name, secs, rec in results:
        print(f"| {name} | {secs:.1f} | {rec:.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=EmbeddingConfig().batch_size, help="rows per encoder batch")
    ap.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS),
                    help="which backends (torch first: it is the reference)")
    ap.add_argument("--agree-rows", type=int, default=2000, help="rows whose neighbours are compared (among themselves)")
    ap.add_argument("--index", action="store_true", help="compare neighbour indexes instead")
    ap.add_argument("--index-rows", type=int, default=100_000)
    ap.add_argument("--cache", type=Path, default=ROOT / ".cache" / "audit-agent")
    args = ap.parse_args()
    print(f"nproc {os.cpu_count()}, load at start {os.getloadavg()}", flush=True)
    if args.index:
        index(args.index_rows, args.cache)
    else:
        backends(args.rows, args.rounds, args.threads, args.cache, args.backends, args.batch, args.agree_rows)


if __name__ == "__main__":
    main()
