"""Paired speed of the embedded models: both servers up at once, the same Banking77 rows judged by
each in turn (A, B, A, B, ...), so a busy machine slows both alike and the ratio stays fair.

    python bench/embedded_speed.py --rows 30 --threads 1

Reports per model the median and mean seconds per judgement, the mean reply length in characters
and the server start-up time. Data is read at run time from /work/shared/data (never copied).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.llm.factory import open_client
from audit_agent.tasks.judge import judge_batch, make_row_input, shared_variables
from judge import DATASETS, RESULTS, flipped_dataset


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", nargs="+", default=["smollm2", "gemma3"])
    ap.add_argument("--out", type=Path, default=RESULTS / "embedded_speed.json")
    args = ap.parse_args()

    frame, order, _ = flipped_dataset(args.rows, args.rows // 5, args.seed)
    seconds: dict[str, list[float]] = {m: [] for m in args.models}
    lengths: dict[str, list[int]] = {m: [] for m in args.models}
    startup: dict[str, float | None] = {}
    load_before = os.getloadavg()[0]
    with ExitStack() as stack, tempfile.TemporaryDirectory() as cache_dir:
        clients, contexts = {}, {}
        for model in args.models:
            config = AuditConfig.model_validate({"seed": args.seed, "llm": {
                "embedded_model": model, "cache_dir": f"{cache_dir}/{model}", "embedded_threads": args.threads,
                "budget": {"max_calls": 10 * args.rows, "max_tokens": 10**9}}})
            contexts[model] = AuditContext(train=Dataset(DATASETS["banking77"][0], frame), config=config)
            clients[model] = stack.enter_context(open_client(config))
            server = getattr(clients[model], "server", None)
            startup[model] = getattr(server, "startup_seconds", None)
        shared = shared_variables(next(iter(contexts.values())))
        for n, pos in enumerate(order, 1):
            for model in args.models:
                ctx = contexts[model]
                row = make_row_input(ctx, str(pos), str(frame.at[pos, "text"]), str(frame.at[pos, "label"]))
                t0 = time.perf_counter()
                outcome = judge_batch(clients[model], ctx, [row], shared=shared)[0]
                seconds[model].append(time.perf_counter() - t0)
                if outcome.verdict is not None:
                    lengths[model].append(len(outcome.verdict.model_dump_json()))
            print(f"\r{n}/{len(order)} rows", end="", file=sys.stderr)
    print(file=sys.stderr)
    result: dict[str, Any] = {
        "command": "python bench/embedded_speed.py " + " ".join(sys.argv[1:]), "cpu_count": os.cpu_count(),
        "threads": args.threads, "load_average_1m_before": round(load_before, 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2), "rows": len(order),
        "models": {m: {"median_seconds": round(statistics.median(s), 2), "mean_seconds": round(statistics.mean(s), 2),
                       "replies": len(lengths[m]),
                       "mean_reply_chars": round(statistics.mean(lengths[m]), 1) if lengths[m] else None,
                       "server_startup_seconds": _round(startup[m])}
                   for m, s in seconds.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
