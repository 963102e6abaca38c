"""Ray or Dask for the partitioned audit: start-up cost of a local cluster on this machine and a small
MinHash job shaped like ours (signatures per partition, LSH bands shuffled by band key, candidate pairs
per reducer), side by side with the same work run serially in one process.

Self-contained (numpy only besides the engine), so it runs in a bare venv with just the engine installed:

    python bench/engine_choice.py --engine ray  --rows 200000 --partitions 8
    python bench/engine_choice.py --engine dask --rows 200000 --partitions 8
    python bench/engine_choice.py --engine serial --rows 200000 --partitions 8
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

NUM_PERM = 128
BANDS, ROWS = 16, 8
REDUCERS = 4
SPAN = 4


def texts(n: int, seed: int) -> list[str]:
    """Short synthetic intents with near copies: 2,000 base sentences, perturbed."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(3000)]
    bases = [" ".join(rng.choice(vocab, size=int(rng.integers(5, 12)))) for _ in range(2000)]
    out = []
    for i in range(n):
        words = bases[i % len(bases)].split()
        if rng.random() < 0.5:
            words[int(rng.integers(len(words)))] = str(rng.choice(vocab))
        out.append(" ".join(words))
    return out


def sketch(part: list[str], offset: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Band keys of every text of one partition, split into REDUCERS shuffle buckets by key."""
    rng = np.random.default_rng(1)
    a = rng.integers(1, 2**31 - 1, size=NUM_PERM, dtype=np.uint64)
    b = rng.integers(0, 2**31 - 1, size=NUM_PERM, dtype=np.uint64)
    sig = np.empty((len(part), NUM_PERM), dtype=np.uint64)
    for i, t in enumerate(part):
        grams = np.frombuffer(t.encode(), dtype=np.uint8)
        sh = (grams[:-2].astype(np.uint64) << np.uint64(16)) | (grams[1:-1].astype(np.uint64) << np.uint64(8)) | grams[2:]
        sig[i] = ((np.outer(a, sh) + b[:, None]) % np.uint64(2**31 - 1)).min(axis=1)
    mult = np.random.default_rng(2).integers(1, 2**63, size=ROWS, dtype=np.uint64) | np.uint64(1)
    keys = np.stack([(sig[:, k * ROWS:(k + 1) * ROWS] * mult).sum(axis=1, dtype=np.uint64) + np.uint64(k)
                     for k in range(BANDS)], axis=1)
    rows = np.repeat(np.arange(offset, offset + len(part)), BANDS)
    flat = keys.ravel()
    dest = flat % np.uint64(REDUCERS)
    return [(flat[dest == r], rows[dest == r], np.zeros(0)) for r in range(REDUCERS)]


def reduce_bucket(*pieces: tuple[np.ndarray, np.ndarray, np.ndarray]) -> int:
    """Candidate pairs of one reducer: every row paired with the next SPAN rows of its bucket."""
    keys = np.concatenate([p[0] for p in pieces])
    rows = np.concatenate([p[1] for p in pieces])
    order = np.lexsort((rows, keys))
    keys, rows = keys[order], rows[order]
    found = [rows[:-s][keys[s:] == keys[:-s]] * 0 + 1 for s in range(1, SPAN + 1) if len(keys) > s]
    return int(sum(f.sum() for f in found))


def tree_rss_mb() -> float:
    import psutil

    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total / 2**20


def run(engine: str, rows: int, partitions: int) -> dict[str, Any]:
    data = texts(rows, 0)
    size = -(-rows // partitions)
    parts = [data[i:i + size] for i in range(0, rows, size)]
    result: dict[str, Any] = {"engine": engine, "rows": rows, "partitions": partitions, "cpus": os.cpu_count()}
    t0 = time.perf_counter()
    if engine == "serial":
        result["startup_s"] = 0.0
        t1 = time.perf_counter()
        mapped = [sketch(p, i * size) for i, p in enumerate(parts)]
        pairs = sum(reduce_bucket(*[m[r] for m in mapped]) for r in range(REDUCERS))
    elif engine == "ray":
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        result["startup_s"] = round(time.perf_counter() - t0, 2)
        result["rss_after_start_mb"] = round(tree_rss_mb())
        t1 = time.perf_counter()
        sk = ray.remote(num_returns=REDUCERS)(sketch)
        red = ray.remote(reduce_bucket)
        refs = [ray.put(p) for p in parts]
        mapped = [sk.remote(p, i * size) for i, p in enumerate(refs)]
        pairs = sum(ray.get([red.remote(*[m[r] for m in mapped]) for r in range(REDUCERS)]))
        result["rss_peak_job_mb"] = round(tree_rss_mb())
    else:
        from dask.distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        result["startup_s"] = round(time.perf_counter() - t0, 2)
        result["rss_after_start_mb"] = round(tree_rss_mb())
        t1 = time.perf_counter()
        futs = client.scatter(parts)
        mapped = [client.submit(sketch, p, i * size, pure=False) for i, p in enumerate(futs)]
        buckets = [[client.submit(lambda m, r=r: m[r], m, pure=False) for m in mapped] for r in range(REDUCERS)]
        pairs = sum(client.gather([client.submit(reduce_bucket, *b, pure=False) for b in buckets]))
        result["rss_peak_job_mb"] = round(tree_rss_mb())
    result["job_s"] = round(time.perf_counter() - t1, 2)
    result["candidate_pairs"] = int(pairs)
    t2 = time.perf_counter()
    if engine == "ray":
        import ray

        ray.shutdown()
    elif engine == "dask":
        client.close()
        cluster.close()
    result["shutdown_s"] = round(time.perf_counter() - t2, 2)
    result["total_s"] = round(time.perf_counter() - t0, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["ray", "dask", "serial"], required=True)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    res = run(args.engine, args.rows, args.partitions)
    res["load_avg"] = os.getloadavg()
    print(json.dumps(res))
    if args.json is not None:
        with args.json.open("a") as fh:
            fh.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
