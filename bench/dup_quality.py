"""Quality and speed of the duplicate checks (exact_duplicate, near_duplicate, conflicting_labels,
contamination).

Quality: 200 random training rows (Banking77 or CLINC150) are copied, lightly perturbed (one or two
of: a typo, a dropped word, changed casing, changed punctuation) and given a different label. Recall = share of
planted (copy, source) pairs that land in the same `conflicting_labels` finding. Every flagged pair
(evidence "pairs") is sorted into:
  planted   - a copy and its source
  adjacent  - a copy and another row with the source's label (the same conflict, seen via a near twin)
  spurious  - a copy and a row with some third label
  original  - two rows of the unmodified data (conflicts the dataset already has)
precision_planted = (planted + adjacent) / pairs touching a copy; precision_all additionally counts
`original` pairs as wrong (a lower bound: many are real label noise). Original pairs are written to
bench/results/dup_original_conflicts_<dataset>.csv for inspection. --sweep picks the threshold by the
F1 of recall and precision_all on each dataset and reports it on the other.

Speed: the four checks on Banking77+CLINC150 replicated with perturbations (bench/scale_data.py),
one subprocess per size so peak RSS is per size.

    python bench/dup_quality.py [--dataset clinc150]  # quality at the shipped threshold
    python bench/dup_quality.py --sweep --seeds 0 1 2   # near_duplicate_threshold chosen on one dataset,
                                                        # scored on the other (both directions)
    python bench/dup_quality.py --sizes 100000 1000000  # speed
Data is read from /work/shared/data at run time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audit_agent.checks import REGISTRY
from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from scale_data import SHARED, scaled

conflicting_labels = REGISTRY["conflicting_labels"].run
contamination = REGISTRY["contamination"].run
exact_duplicate = REGISTRY["exact_duplicate"].run
near_duplicate = REGISTRY["near_duplicate"].run

RESULTS = Path(__file__).resolve().parent / "results"
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def typo(text: str, rng: np.random.Generator) -> str:
    words = text.split()
    candidates = [i for i, w in enumerate(words) if len(w) >= 3]
    if not candidates:
        return text
    i = int(rng.choice(candidates))
    w = words[i]
    j = int(rng.integers(len(w) - 1))
    op = rng.choice(["substitute", "delete", "insert", "swap"])
    if op == "substitute":
        w = w[:j] + str(rng.choice(list(LETTERS))) + w[j + 1:]
    elif op == "delete":
        w = w[:j] + w[j + 1:]
    elif op == "insert":
        w = w[:j] + str(rng.choice(list(LETTERS))) + w[j:]
    else:
        w = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    words[i] = w
    return " ".join(words)


def drop_word(text: str, rng: np.random.Generator) -> str:
    words = text.split()
    if len(words) < 4:
        return text
    del words[int(rng.integers(len(words)))]
    return " ".join(words)


def recase(text: str, rng: np.random.Generator) -> str:
    return text.lower() if rng.random() < 0.5 else text.upper()


def repunctuate(text: str, rng: np.random.Generator) -> str:
    return text.rstrip("?.!").replace(",", "") + str(rng.choice(["", "!!", "?", ".", " ?"]))


EDITS = [typo, drop_word, recase, repunctuate]


def perturb(text: str, rng: np.random.Generator) -> str:
    for k in rng.choice(len(EDITS), size=int(rng.integers(1, 3)), replace=False):
        text = EDITS[int(k)](text, rng)
    return text


def context(frame: pd.DataFrame, eval_frame: pd.DataFrame | None = None,
            config: AuditConfig | None = None) -> AuditContext:
    def ds(df: pd.DataFrame, name: str) -> Dataset:
        df = df.reset_index(drop=True)
        df.insert(0, "id", [str(i) for i in range(len(df))])
        return Dataset(Path(name), df[["id", "text", "label"]])

    return AuditContext(train=ds(frame, "train.csv"), config=config or AuditConfig(),
                        eval=None if eval_frame is None else ds(eval_frame, "eval.csv"))


DATA = SHARED if SHARED.exists() else Path("/work/shared/data")
LABEL_COLUMNS = {"banking77": "category", "clinc150": "intent"}


def quality(n_planted: int, seed: int, dataset: str = "banking77", threshold: float | None = None,
            write_originals: bool = True) -> dict[str, object]:
    base = pd.read_csv(DATA / dataset / "train.csv").rename(columns={LABEL_COLUMNS[dataset]: "label"})
    base = base[["text", "label"]]
    rng = np.random.default_rng(seed)
    sources = rng.choice(len(base), size=n_planted, replace=False)
    labels = base["label"].unique()
    copies = pd.DataFrame({
        "text": [perturb(base["text"].iat[s], rng) for s in sources],
        "label": [str(rng.choice(labels[labels != base["label"].iat[s]])) for s in sources],
    })
    frame = pd.concat([base, copies], ignore_index=True)
    source_of = {len(base) + k: int(s) for k, s in enumerate(sources)}
    config = AuditConfig() if threshold is None else AuditConfig.model_validate(
        {"checks": {"near_duplicate_threshold": threshold}})
    ctx = context(frame, config=config)
    start = time.perf_counter()
    findings = [f for f in conflicting_labels(ctx) if not getattr(f.evidence, "summary", None)]
    seconds = time.perf_counter() - start

    together = set()
    for f in findings:
        members = {int(r) for r in f.rows}
        together |= {c for c in members if c in source_of and source_of[c] in members}
    recall = len(together) / n_planted

    kinds = {"planted": 0, "adjacent": 0, "spurious": 0, "original": 0}
    originals = []
    truncated = 0
    for f in findings:
        truncated += f.evidence["conflicting_pairs"] > len(f.evidence["pairs"])
        for pair in f.evidence["pairs"]:
            a, b = int(pair["a"]["id"]), int(pair["b"]["id"])
            copy, other = (a, b) if a in source_of else (b, a)
            if copy not in source_of:
                kinds["original"] += 1
                originals.append({"similarity": pair["similarity"], "text_a": pair["a"]["text"],
                                  "label_a": pair["a"]["label"], "text_b": pair["b"]["text"],
                                  "label_b": pair["b"]["label"]})
            elif other == source_of[copy]:
                kinds["planted"] += 1
            elif other not in source_of and frame["label"].iat[other] == frame["label"].iat[source_of[copy]]:
                kinds["adjacent"] += 1
            else:
                kinds["spurious"] += 1
    touching = kinds["planted"] + kinds["adjacent"] + kinds["spurious"]
    if write_originals and originals:
        RESULTS.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(originals).sort_values("similarity", ascending=False).to_csv(
            RESULTS / f"dup_original_conflicts_{dataset}.csv", index=False)
    p_all = (kinds["planted"] + kinds["adjacent"]) / max(sum(kinds.values()), 1)
    return {
        "dataset": dataset, "seed": seed, "planted": n_planted, "pairs": sum(kinds.values()),
        "f1_all": round(2 * p_all * recall / (p_all + recall), 4) if p_all + recall else 0.0, "recall": round(recall, 4), "pair_kinds": kinds,
        "precision_planted": round((kinds["planted"] + kinds["adjacent"]) / max(touching, 1), 4),
        "precision_all": round((kinds["planted"] + kinds["adjacent"]) / max(sum(kinds.values()), 1), 4),
        "findings": len(findings), "findings_with_truncated_pairs": truncated,
        "threshold": ctx.config.checks.near_duplicate_threshold, "seconds": round(seconds, 2),
    }


def speed_one(n_rows: int) -> dict[str, object]:
    frame = scaled(n_rows, seed=0)
    ctx = context(frame, scaled(2000, seed=1))
    timings: dict[str, float] = {}
    start = time.perf_counter()
    _ = ctx.features.normalized
    timings["normalize"] = time.perf_counter() - start
    t = time.perf_counter()
    _ = ctx.features.neighbors
    timings["index"] = time.perf_counter() - t
    counts = {}
    for func in (exact_duplicate, near_duplicate, conflicting_labels, contamination):
        t = time.perf_counter()
        counts[func.__name__] = len(func(ctx))
        timings[func.__name__] = time.perf_counter() - t
    total = time.perf_counter() - start
    return {"rows": n_rows, "seconds": {k: round(v, 2) for k, v in timings.items()}, "total_s": round(total, 2),
            "findings": counts, "near_pairs": int(ctx.features.neighbors.unique_pairs.shape[1])}


SWEEP_GRID = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def sweep(seeds: list[int], n_planted: int, grid: tuple[float, ...] = SWEEP_GRID) -> pd.DataFrame:
    """Quality per (dataset, seed, threshold): each seed plants a different set of copies."""
    rows = []
    for dataset in LABEL_COLUMNS:
        for seed in seeds:
            for t in grid:
                r = quality(n_planted, seed, dataset, t, write_originals=False)
                rows.append({k: v for k, v in r.items() if k != "pair_kinds"} | {"threshold": t}
                            | {f"pairs_{k}": v for k, v in r["pair_kinds"].items()})  # type: ignore[union-attr]
                print(json.dumps(rows[-1]), flush=True)
    return pd.DataFrame(rows)


def sweep_report(table: pd.DataFrame) -> str:
    """Threshold chosen by mean F1 (recall x precision over all pairs) on one dataset, scored on the other."""
    means = table.groupby(["dataset", "threshold"])[["recall", "precision_planted", "precision_all",
                                                     "f1_all", "pairs"]].mean()
    lines = ["| chosen on | threshold | F1 there | scored on | recall | precision (pairs touching a copy) | "
             "precision (all pairs) | F1 (all pairs) | flagged pairs |", "|---|---|---|---|---|---|---|---|---|"]
    for a in LABEL_COLUMNS:
        f1 = means.loc[a, "f1_all"]
        t = float(f1[f1 >= f1.max() - 1e-12].index.max())
        for b in (n for n in LABEL_COLUMNS if n != a):
            m = means.loc[(b, t)]
            lines.append(f"| {a} | {t:g} | {f1[t]:.3f} | {b} | {m.recall:.3f} | {m.precision_planted:.3f} | "
                         f"{m.precision_all:.3f} | **{m.f1_all:.3f}** | {m.pairs:.0f} |")
    lines += ["", "| dataset | threshold | recall | precision (pairs touching a copy) | precision (all pairs) | "
              "F1 (all pairs) | flagged pairs |", "|---|---|---|---|---|---|---|"]
    for (ds, t), m in means.iterrows():
        lines.append(f"| {ds} | {t:g} | {m.recall:.3f} | {m.precision_planted:.3f} | {m.precision_all:.3f} | "
                     f"{m.f1_all:.3f} | {m.pairs:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--planted", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", type=int, nargs="*", default=[])
    parser.add_argument("--speed-one", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--dataset", choices=list(LABEL_COLUMNS), default="banking77")
    parser.add_argument("--sweep", action="store_true", help="near_duplicate_threshold out of sample, both ways")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="with --sweep")
    args = parser.parse_args()
    if args.sweep:
        start = time.perf_counter()
        table = sweep(args.seeds, args.planted)
        print(sweep_report(table))
        print(f"{time.perf_counter() - start:.0f} s wall")
        return
    if args.speed_one:
        result = speed_one(args.speed_one)
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(json.dumps(result))
        return
    if not args.sizes:
        print(json.dumps(quality(args.planted, args.seed, args.dataset), indent=2))
        return
    for size in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--speed-one", str(size)], check=True,
                             capture_output=True, text=True).stdout
        print(out.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
