"""Judge speed and quality with the configured model (default: the embedded model; `--embedded-model`
picks smollm2 or gemma3).

Banking77 train (read at run time from /work/shared/data) with `--flips` of `--rows` sampled rows
given a random wrong label. The judge sees the sampled rows; verification uses the real out-of-fold
classifier and near-duplicate index over the whole (flipped) training set. Reports judgements per
minute, seconds per judgement, accuracy on the known answers (`known_answers`: flipped rows must be
`contradicted` naming the original label, the others `supported`), and precision/recall of
`judge_contradicted` on the flipped rows, before and after verification (plus the OOF classifier
alone, for context).

    python bench/judge.py --rows 200 --flips 40
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.tasks import judge as judge_task
from audit_agent.tasks.judge import Verdict, judge_batch, make_row_input, shared_variables
from audit_agent.verify.judge import SignalSource, verify_verdict

SHARED = Path("/work/shared/data")
DATASETS = {"banking77": (SHARED / "banking77" / "train.csv", "category"),
            "clinc150": (SHARED / "clinc150" / "train.csv", "intent")}
DATA = DATASETS["banking77"][0]
RESULTS = Path(__file__).resolve().parent / "results"


def flipped_dataset(rows: int, flips: int, seed: int, dataset: str = "banking77"
                    ) -> tuple[pd.DataFrame, list[int], dict[int, str]]:
    """The whole train split with `flips` of `rows` sampled rows relabelled at random; the flipped
    positions map to their original label."""
    path, label_col = DATASETS[dataset]
    raw = pd.read_csv(path)
    frame = pd.DataFrame({"id": [str(i) for i in range(len(raw))], "text": raw["text"].astype(str),
                          "label": raw[label_col].astype(str)})
    rng = np.random.default_rng(seed)
    sample = [int(i) for i in rng.choice(len(frame), size=rows, replace=False)]
    flip = {pos: str(frame.at[pos, "label"]) for pos in sample[:flips]}
    labels = sorted(frame["label"].unique())
    for pos in flip:
        choices = [lab for lab in labels if lab != frame.at[pos, "label"]]
        frame.at[pos, "label"] = choices[int(rng.integers(len(choices)))]
    order = [sample[int(i)] for i in rng.permutation(len(sample))]
    return frame, order, flip


def prf(flagged: set[int], truth: set[int]) -> dict[str, Any]:
    tp = len(flagged & truth)
    precision = tp / len(flagged) if flagged else None
    recall = tp / len(truth) if truth else None
    f1 = (2 * precision * recall / (precision + recall)) if precision and recall else 0.0
    return {"flagged": len(flagged), "true_positives": tp,
            "precision": None if precision is None else round(precision, 3),
            "recall": None if recall is None else round(recall, 3), "f1": round(f1, 3)}


def known_answers(caught: int, flipped: int, kept: int, right: int) -> dict[str, Any]:
    """Accuracy on rows whose answer is known: a flipped row must be `contradicted` naming its original
    label, a row with its own label must be `supported`; `balanced` is the mean of the two. A judge that
    always says `supported` scores 0 and 1, balanced 0.5 (and `overall` = the share of right rows)."""
    on_flipped = caught / flipped if flipped else None
    on_right = kept / right if right else None
    both = None if on_flipped is None or on_right is None else (on_flipped + on_right) / 2
    return {"flipped_caught": f"{caught}/{flipped}", "right_supported": f"{kept}/{right}",
            "accuracy_on_flipped": None if on_flipped is None else round(on_flipped, 3),
            "accuracy_on_right": None if on_right is None else round(on_right, 3),
            "overall": round((caught + kept) / (flipped + right), 3) if flipped + right else None,
            "balanced": None if both is None else round(both, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--flips", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="banking77")
    ap.add_argument("--enum-limit", type=int, default=None,
                    help="label sets up to this size are an enum in the schema (default: tasks.judge.MAX_ENUM_LABELS)")
    ap.add_argument("--model", default=None, help="litellm model string; default: the embedded model")
    ap.add_argument("--threads", type=int, default=None, help="llm.embedded_threads (default: half the cores)")
    ap.add_argument("--embedded-model", choices=["smollm2", "gemma3"], default=None,
                    help="llm.embedded_model (default: the configured default)")
    ap.add_argument("--stock-sampler", action="store_true",
                    help="embedded model: llama-cpp-python's stock sampler (llm.embedded_grammar_first: false)")
    ap.add_argument("--max-minutes", type=float, default=30.0, help="stop judging after this long")
    ap.add_argument("--out", type=Path, default=RESULTS / "judge.json")
    args = ap.parse_args()

    from audit_agent.llm.factory import open_client

    if args.enum_limit is not None:
        judge_task.MAX_ENUM_LABELS = args.enum_limit
        judge_task.verdict_schema.cache_clear()
    frame, order, flip = flipped_dataset(args.rows, args.flips, args.seed, args.dataset)
    with tempfile.TemporaryDirectory() as cache_dir:  # a fresh cache: every judgement is a real call
        config = AuditConfig.model_validate({"seed": args.seed, "llm": {
            "model": args.model, "cache_dir": cache_dir, "embedded_threads": args.threads,
            "embedded_grammar_first": not args.stock_sampler,
            **({"embedded_model": args.embedded_model} if args.embedded_model else {}),
            "budget": {"max_calls": 10 * args.rows, "max_tokens": 10**9, "max_cost_usd": 5.0}}})
        ctx = AuditContext(train=Dataset(DATASETS[args.dataset][0], frame), config=config)
        t0 = time.perf_counter()
        signals = SignalSource(ctx)
        _ = signals.oof, signals.groups
        features_s = time.perf_counter() - t0
        label_set = ctx.train.label_set
        records: list[dict[str, Any]] = []
        with open_client(config) as client:
            shared = shared_variables(ctx)
            start = time.perf_counter()
            chunk = max(1, config.llm.max_concurrency)
            for i in range(0, len(order), chunk):
                if time.perf_counter() - start > args.max_minutes * 60:
                    break
                batch = order[i:i + chunk]
                rows = [make_row_input(ctx, str(p), str(frame.at[p, "text"]), str(frame.at[p, "label"])) for p in batch]
                t1 = time.perf_counter()
                outcomes = judge_batch(client, ctx, rows, shared=shared)
                per = (time.perf_counter() - t1) / len(rows)
                for pos, out in zip(batch, outcomes, strict=True):
                    rec: dict[str, Any] = {"pos": pos, "flipped": pos in flip, "original": flip.get(pos),
                                           "seconds": per, "error": out.error}
                    if out.verdict is not None:
                        v = out.verdict
                        sig = signals.for_row(str(pos), v.best_label, out.row.label)
                        ver = verify_verdict(v, text=out.row.full_text, given_label=out.row.label,
                                             label_set=label_set, signals=sig)
                        rec.update(verdict=v.verdict.value, best_label=v.best_label, verified=ver.verified,
                                   quote_found=ver.evidence["quote_found"], quote_match=ver.evidence["quote_match"],
                                   label_valid=ver.evidence["label_valid"],
                                   oof_top=sig.oof_top, given=out.row.label)
                    records.append(rec)
                print(f"\r{len(records)}/{len(order)} judged, {per:.1f} s/judgement", end="", file=sys.stderr)
            wall = time.perf_counter() - start
            description = client.description
            server = getattr(client, "server", None)
            startup = getattr(server, "startup_seconds", None)
    print(file=sys.stderr)

    judged = [r for r in records if "verdict" in r]
    truth = {r["pos"] for r in judged if r["flipped"]}
    flipped_rows = [r for r in judged if r["flipped"]]
    right_rows = [r for r in judged if not r["flipped"]]
    caught = [r for r in flipped_rows if r["verdict"] == Verdict.CONTRADICTED and r["best_label"] == r["original"]]
    kept = [r for r in right_rows if r["verdict"] == Verdict.SUPPORTED]
    kept_same = sum(r["best_label"] == r["given"] for r in kept)
    contradicted = {r["pos"] for r in judged if r["verdict"] == Verdict.CONTRADICTED}
    flagged_any = {r["pos"] for r in judged if r["verdict"] != Verdict.SUPPORTED}
    seconds = [r["seconds"] for r in records]
    result = {
        "model": description, "rows_requested": len(order), "rows_attempted": len(records),
        "rows_judged": len(judged), "rows_failed": sum(r["error"] is not None for r in records),
        "flipped_judged": len(truth), "wall_seconds": round(wall, 1),
        "seconds_per_judgement": round(wall / len(records), 2) if records else None,
        "median_seconds_per_judgement": round(statistics.median(seconds), 2) if seconds else None,
        "judgements_per_minute": round(60 * len(records) / wall, 1) if wall else None,
        "features_seconds": round(features_s, 1),
        "server_startup_seconds": None if startup is None else round(startup, 1), "cpu_count": os.cpu_count(), "threads": args.threads,
        "sampler": "stock" if args.stock_sampler else "grammar-first",
        "load_average_1m": round(os.getloadavg()[0], 2),
        "verdicts": {v.value: sum(r["verdict"] == v.value for r in judged) for v in Verdict},
        "dataset": args.dataset, "labels": frame["label"].nunique(),
        "best_label_enum": frame["label"].nunique() <= judge_task.MAX_ENUM_LABELS,
        "best_label_valid_share": round(sum(r["label_valid"] for r in judged) / len(judged), 3) if judged else None,
        "quote_found_share": round(sum(r["quote_found"] for r in judged) / len(judged), 3) if judged else None,
        "judge_contradicted_raw": prf(contradicted, truth),
        "known_answers": {**known_answers(len(caught), len(flipped_rows), len(kept), len(right_rows)),
                          "right_supported_naming_it": f"{kept_same}/{len(right_rows)}"},
        "self_contradictory": sum(r["verdict"] == Verdict.CONTRADICTED and r["best_label"] == r["given"]
                                  for r in judged),
        "judge_contradicted_claims": prf({r["pos"] for r in judged if r["verdict"] == Verdict.CONTRADICTED
                                          and r["best_label"] != r["given"]}, truth),
        "judge_contradicted_verified": prf({r["pos"] for r in judged
                                            if r["verdict"] == Verdict.CONTRADICTED and r["verified"]}, truth),
        "judge_flagged_any_raw": prf(flagged_any, truth),
        "oof_classifier_alone": prf({r["pos"] for r in judged if r["oof_top"] not in (None, r["given"])}, truth),
        "command": "python bench/judge.py " + " ".join(sys.argv[1:]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": result, "records": records}, indent=1, default=str))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
