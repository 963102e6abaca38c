"""Speed and memory of the deterministic audit (`audit-agent run --no-llm`) at scale.

Runs the real CLI in a subprocess per size and records wall time and peak RSS (resource.getrusage
of the child). Data: bench/scale_data.py (Banking77 + CLINC150 replicated with perturbations),
with a 50-row real batch from Banking77's test split and a 2,000-row eval split.

    python bench/speed.py --sizes 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_data import SHARED, scaled

WORK = Path(__file__).resolve().parent / "results"


def prepare(n_rows: int) -> dict[str, Path]:
    WORK.mkdir(parents=True, exist_ok=True)
    train = WORK / f"train_{n_rows}.csv"
    if not train.exists():
        scaled(n_rows, seed=0).to_csv(train, index=False)
    real = WORK / "real_50.csv"
    if not real.exists():
        pd.read_csv(SHARED / "banking77" / "test.csv").sample(50, random_state=0).rename(
            columns={"category": "label"}).to_csv(real, index=False)
    evalf = WORK / "eval_2000.csv"
    if not evalf.exists():
        scaled(2000, seed=1).to_csv(evalf, index=False)
    return {"train": train, "real": real, "eval": evalf}


def run_once(n_rows: int) -> dict[str, object]:
    files = prepare(n_rows)
    out = WORK / f"audit_{n_rows}"
    cmd = [sys.executable, "-m", "audit_agent", "run", str(files["train"]), "--eval", str(files["eval"]),
           "--real", str(files["real"]), "--out", str(out), "--no-llm"]
    start = time.perf_counter()
    log = WORK / f"run_{n_rows}.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"run failed ({code}): see {log}")
    summary = json.loads((out / "summary.json").read_text())
    per_check = {s["name"]: round(s["seconds"], 2) for s in summary.get("checks", []) if s.get("state") == "ran"}
    return {"rows": n_rows, "wall_s": round(wall, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024),
            "per_check_s": per_check, "command": " ".join(cmd[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}, "
          f"{os.cpu_count()} cores")
    for n in args.sizes:
        res = run_once(n)
        print(json.dumps(res))


if __name__ == "__main__":
    main()
