"""The partitioned audit at scale: `audit-agent run --no-llm` with `--engine local` and `--engine ray`
on the same data in one invocation, one after the other, with wall time and the memory of the whole
process tree (the CLI, and with Ray its GCS, raylet and worker processes) sampled every second.

Memory: the sum of PSS over the tree (shared pages such as Ray's object store counted once, split
between the processes that map them) is the figure compared with the target; the sum of RSS counts a
shared page once per process and is given as an upper bound. Data: bench/scale_data.py (Banking77 +
CLINC150 replicated with perturbations), written to --work once per size.

    python bench/engine_scale.py --rows 1000000 --engines local ray
    python bench/engine_scale.py --rows 10000000 --engines ray --config big.yaml
    python bench/engine_scale.py --rows 100000 --engines local ray --compare
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_compare import compare
from scale_data import scaled


def tree_memory(root: psutil.Process) -> tuple[float, float]:
    """(sum of PSS, sum of RSS) in MB over `root` and all its descendants."""
    pss = rss = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0, 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            info = p.memory_full_info()
            pss += getattr(info, "pss", info.rss)
            rss += info.rss
    return pss / 2**20, rss / 2**20


def stage_peaks(samples: list[tuple[float, float, float, float]],
                started: dict[str, float]) -> dict[str, list[float]]:
    """Per stage (from its start to the next stage's): [peak PSS, peak RSS] in MB over the process tree;
    `startup` is the CLI's start up to the reading of the split."""
    bounds = sorted(started.items(), key=lambda kv: kv[1])
    windows = [("startup", float("-inf"), bounds[0][1] if bounds else float("inf"))]
    windows += [(name, at, bounds[i + 1][1] if i + 1 < len(bounds) else float("inf"))
                for i, (name, at) in enumerate(bounds)]
    out = {}
    for name, lo, hi in windows:
        inside = [s for s in samples if lo <= s[3] < hi]
        if inside:
            out[name] = [round(max(s[1] for s in inside)), round(max(s[2] for s in inside))]
    return out


def engine_evidence(out: Path) -> dict[str, Any]:
    """The `engine` finding's evidence (stage seconds and starts) from findings.jsonl ({} for local)."""
    for line in (out / "findings.jsonl").read_text(encoding="utf-8").splitlines():
        if '"engine"' in line:
            finding = json.loads(line)
            if finding["check"] == "engine":
                return dict(finding["evidence"])
    return {}


def run_cli(data: Path, engine: str, out: Path, config: Path | None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "audit_agent", "run", str(data), "--no-llm", "--engine", engine, "--out", str(out)]
    if config is not None:
        cmd += ["--config", str(config)]
    samples: list[tuple[float, float, float, float]] = []
    load_before = os.getloadavg()
    start = time.perf_counter()
    log = out.with_suffix(".log")
    out.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        root = psutil.Process(proc.pid)
        stop = threading.Event()

        trace = out.with_suffix(".mem.tsv").open("w")  # the timeline, readable while the run goes on

        def sample() -> None:
            while not stop.is_set():
                pss, rss = tree_memory(root)
                samples.append((time.perf_counter() - start, pss, rss, time.time()))
                trace.write(f"{samples[-1][0]:.0f}\t{pss:.0f}\t{rss:.0f}\t{os.getloadavg()[0]:.2f}\t{samples[-1][3]:.0f}\n")
                trace.flush()
                stop.wait(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        stop.set()
        sampler.join()
        trace.close()
    wall = time.perf_counter() - start
    if code not in (0, 1):
        raise SystemExit(f"{engine} run failed ({code}): see {log}")
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["dataset"]["train"]["rows"]
    per_check = {s["name"]: round(s["seconds"], 1) for s in summary["checks"] if s.get("state") == "ran"}
    engine_info = summary.get("extra", {}).get("engine") or engine_evidence(out)
    return {"engine": engine, "rows": rows, "wall_s": round(wall, 1), "us_per_row": round(wall / rows * 1e6, 1),
            "peak_pss_all_processes_mb": round(max((s[1] for s in samples), default=0)),
            "peak_rss_all_processes_mb": round(max((s[2] for s in samples), default=0)),
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()], "nproc": os.cpu_count(),
            "engine_stages_s": engine_info.get("stage_seconds"),
            "stage_peaks_mb": stage_peaks(samples, engine_info.get("stage_started") or {}),
            "per_check_s": per_check, "command": " ".join(["audit-agent", *cmd[3:]])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--engines", nargs="+", default=["local", "ray"], choices=["local", "ray"])
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--config", type=Path, default=None, help="YAML settings for every run (engine: ...)")
    parser.add_argument("--compare", action="store_true", help="compare the findings of the two engines")
    parser.add_argument("--json", type=Path, default=None, help="append each result as a JSON line here")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    data = args.work / f"train_{args.rows}.csv"
    if not data.exists():
        scaled(args.rows, seed=0).to_csv(data, index=False)
    outs = {}
    for engine in args.engines:
        outs[engine] = args.work / f"audit_{args.rows}_{engine}"
        res = run_cli(data, engine, outs[engine], args.config)
        print(json.dumps(res), flush=True)
        if args.json is not None:
            with args.json.open("a") as fh:
                fh.write(json.dumps(res) + "\n")
    if args.compare and len(outs) == 2:
        print(json.dumps({"rows": args.rows, "agreement": compare(outs["local"], outs["ray"])}))


if __name__ == "__main__":
    main()
