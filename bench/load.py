"""Load: `audit-agent run` on 100,000 rows with a judge budget of 2,000 calls against the local
fault server (tests/faultserver.py: ~50 ms latency, some 429s and 500s) at concurrency 16.

Records wall time, judge calls per second, the server's request rate per 10-second window (steady
progress = no long stall), peak RSS of the run (os.wait4) and its RSS over time (bounded memory).

    python bench/load.py                                   # 100k rows, 2,000 calls, concurrency 16
    python bench/load.py --rows 100000 --max-calls 300 --concurrency 1   # the effect of concurrency
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from tests.faultserver import FaultServer, write_config  # noqa: E402

from scale_data import scaled  # noqa: E402


def rss_mb(pid: int) -> float | None:
    """Resident memory of `pid` in MB (Linux /proc), None once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run(rows: int, max_calls: int, concurrency: int, latency: float, rate_429: float, rate_500: float,
        work: Path, per_label: int, max_tokens: int) -> dict[str, Any]:
    data = work / f"train_{rows}.csv"
    if not data.exists():
        frame = scaled(rows, seed=0)
        frame.insert(0, "id", [f"r{i}" for i in range(len(frame))])  # see docs/reliability.md (label_overlap)
        frame.to_csv(data, index=False)
    out = work / f"out_{rows}_{max_calls}_{concurrency}"
    samples: list[tuple[float, int, float | None]] = []  # (seconds, server hits, RSS MB)
    with FaultServer(rates={"429": rate_429, "500": rate_500}, latency=latency, seed=0) as server:
        server.keep_bodies = False
        cfg = write_config(work / f"load_{concurrency}.yaml", server, cache_dir=work / f"cache_{concurrency}_{time.time_ns()}",
                           retries=4, request_timeout=30.0, max_concurrency=concurrency,
                           budget={"max_tokens": max_tokens})
        with cfg.open("a", encoding="utf-8") as fh:
            fh.write(f"sample:\n  per_label: {per_label}\n")
        cmd = [sys.executable, "-m", "audit_agent", "run", str(data), "--model", "openai/fault", "--config", str(cfg),
               "--max-calls", str(max_calls), "--no-rewrite-guide", "--paraphrase-rows", "0", "--out", str(out)]
        start = time.perf_counter()
        log = (work / "load_run.log").open("w")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "FAKE_KEY": "sk-load-test"})
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append((time.perf_counter() - start, server.hits, rss_mb(proc.pid)))
                stop.wait(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        stop.set()
        sampler.join()
        log.close()
        wall = time.perf_counter() - start
        counts = dict(server.counts)
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"run failed with exit code {code}: see {work / 'load_run.log'}")
    judge = json.loads((out / "summary.json").read_text(encoding="utf-8"))["judge"]
    judging = [s for s in samples if s[1] > 0]
    first = judging[0][0] if judging else wall
    last = min((s[0] for s in samples if s[1] == samples[-1][1]), default=wall)
    windows = []
    for t0 in range(int(first), int(last) + 1, 10):
        inside = [s for s in samples if t0 <= s[0] < t0 + 10]
        if len(inside) >= 2:
            windows.append(round((inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]), 1))
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(judging) if b[1] == a[1] and a[0] < last]
    rss = [s[2] for s in samples if s[2] is not None]
    rss_judging = [s[2] for s in judging if s[2] is not None and s[0] <= last]
    return {
        "rows": rows, "max_calls": max_calls, "max_tokens": max_tokens, "concurrency": concurrency, "latency_s": latency,
        "fault_rates": {"429": rate_429, "500": rate_500}, "exit_code": code,
        "wall_s": round(wall, 1), "judging_s": round(last - first, 1),
        "server_requests": sum(counts.values()), "server_modes": counts,
        "judge": {k: judge[k] for k in ("rows_judged", "rows_failed", "calls", "cached_calls", "stop_reason",
                                        "rounds", "seconds")},
        "calls_per_s": round(judge["calls"] / max(last - first, 1e-9), 1),
        "requests_per_s_by_10s_window": windows,
        "longest_stall_s_while_judging": round(max(gaps, default=0.0), 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "rss_mb_start_end_of_judging": [round(rss_judging[0]) if rss_judging else None,
                                        round(rss_judging[-1]) if rss_judging else None],
        "rss_mb_max_sampled": round(max(rss)) if rss else None,
        "command": " ".join(["audit-agent", *cmd[3:]]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--max-calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rate-429", type=float, default=0.03)
    parser.add_argument("--rate-500", type=float, default=0.02)
    parser.add_argument("--per-label", type=int, default=10, help="sample.per_label (227 labels x 10 > 2,000)")
    parser.add_argument("--max-tokens", type=int, default=5_000_000,
                        help="llm.budget.max_tokens (the default 400,000 stops 227-label prompts at ~460 calls)")
    parser.add_argument("--work", type=Path, default=None, help="folder for data and outputs (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="audit-load-"))
    work.mkdir(parents=True, exist_ok=True)
    result = run(args.rows, args.max_calls, args.concurrency, args.latency, args.rate_429, args.rate_500, work,
                 args.per_label, args.max_tokens)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
