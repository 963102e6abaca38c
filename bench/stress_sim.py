"""`stress` against a simulated classifier server with planted accuracies per variant kind.

The eval rows are a public test split (read at run time from /work/shared/data), the checker is
fitted on its train split. tests/classifier_sim.py answers each text correctly with the planted rate
of its kind (hash-seeded, deterministic); `stress` calls it through the project's LLM client
(litellm, cache, budget) like any model. Per kind the script prints the scored count, the measured
accuracy, the exact accuracy the simulator's deterministic answers give on the scored texts, the
planted rate, the gap to it and that gap in binomial standard errors.

    python bench/stress_sim.py --dataset banking77 --max-rows 3000 --concurrency 8
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from tests.classifier_sim import ClassifierSim  # noqa: E402

from audit_agent.config import load_config  # noqa: E402
from audit_agent.io.loader import load_dataset  # noqa: E402
from audit_agent.jobs.stress import make_variants  # noqa: E402
from audit_agent.stress_api import stress  # noqa: E402

SHARED = Path("/work/shared/data")
DATASETS = {"banking77": (SHARED / "banking77" / "train.csv", SHARED / "banking77" / "test.csv"),
            "clinc150": (SHARED / "clinc150" / "train.csv", SHARED / "clinc150" / "test.csv")}
RATES = {"clean": 0.95, "very_short": 0.8, "typos": 0.9, "no_punctuation": 0.95, "lowercase": 0.9,
         "mixed_intent": 0.75, "indirect": 0.85, "emotional": 0.88}
TOLERANCE = 0.02


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="banking77")
    ap.add_argument("--max-rows", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sim-seed", type=int, default=11)
    ap.add_argument("--out", type=Path, default=None, help="also write stress.md / stress.json here")
    args = ap.parse_args()
    train_path, eval_path = DATASETS[args.dataset]
    if not eval_path.exists():
        sys.exit(f"{eval_path} is missing: this benchmark reads the public datasets from {SHARED}")

    train, ev = load_dataset(train_path), load_dataset(eval_path, role="eval")
    truth: dict[str, tuple[str, str]] = {}
    for v in make_variants(ev.frame[["id", "text", "label"]].astype(str), train.frame, seed=args.seed):
        truth.setdefault(v.text, (v.label, v.kind))
    with tempfile.TemporaryDirectory() as tmp, \
            ClassifierSim(truth, train.label_set, rates=RATES, seed=args.sim_seed) as sim:
        cfg = load_config(None, {"llm.model": "openai/sim", "llm.api_base": sim.api_base, "seed": args.seed,
                                 "llm.cache_dir": str(Path(tmp) / "cache"), "llm.max_concurrency": args.concurrency})
        started = time.perf_counter()
        res = stress(train_path, eval=eval_path, model="openai/sim", config=cfg, max_rows=args.max_rows, out=args.out)
        wall = time.perf_counter() - started
        hits = sim.hits
    print(f"{args.dataset}: {res.rows} eval rows, {hits} requests, {wall:.0f} s wall "
          f"({wall / max(hits, 1) * 1000:.0f} ms per text at concurrency {args.concurrency}); nproc {os.cpu_count()}, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"{'kind':15} {'scored':>6} {'dropped':>7} {'measured':>8} {'exact':>7} {'planted':>7} {'gap':>7} "
          f"{'z':>5}  within {TOLERANCE}")
    rows = []
    for kind in ("clean", *res.kinds):
        s = res.score(kind)
        scored = [v for v in res.variants if v.kind == kind and v.correct is not None]
        exact = sum(sim.answer(v.text) == v.label for v in scored) / len(scored)
        p = RATES[kind]
        gap = (s.accuracy or 0.0) - p
        z = gap / math.sqrt(p * (1 - p) / s.scored)
        ok = abs((s.accuracy or 0.0) - exact) <= 1e-4 and abs(gap) <= TOLERANCE
        rows.append({"kind": kind, "scored": s.scored, "dropped": sum(s.dropped.values()), "measured": s.accuracy,
                     "exact": round(exact, 4), "planted": p, "gap": round(gap, 4), "z": round(z, 2), "ok": ok})
        print(f"{kind:15} {s.scored:6d} {sum(s.dropped.values()):7d} {s.accuracy:8.4f} {exact:7.4f} {p:7.2f} "
              f"{gap:+7.4f} {z:+5.2f}  {'yes' if ok else 'NO'}")
    print(json.dumps({"dataset": args.dataset, "rows": res.rows, "requests": hits, "wall_s": round(wall, 1),
                      "kinds": rows}))


if __name__ == "__main__":
    main()
