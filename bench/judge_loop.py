"""The agent loop against a simulated judge of known accuracy (bench/judge_sim.py): what the default
budget buys, how many planted wrong labels it verifies, how precise the verified claims are, and how
close the calibration's estimate (balanced accuracy on canaries and confident rows) comes to the
judge's true accuracy.

    python bench/judge_loop.py                                   # both datasets x 0.6/0.7/0.9/1.0, seed 0
    python bench/judge_loop.py --datasets support --accuracies 0.9 --seeds 0 1 2
    python bench/judge_loop.py --second-judge                    # + a second simulated model (kappa)

Datasets: `support` is the bundled example (fixtures/support/train.csv, its planted label flips in
planted.json; the wrong labels counted are those the simulated judge knows as wrong: the 24 flips plus
t0038, a planted conflict copy that differs from its twin t0340 only in case, which the sim's
case-folding lookup reads as its twin's label); `banking77` is a seeded sample of ../shared/data/banking77/train.csv (`--b77-labels`
labels x `--b77-per-label` rows) with `--b77-rate` of the labels flipped, half to a random class, half
to the class a clean classifier confuses most with the true one (bench/planting.py). The run is the
library's `audit()` with everything on (guide rewrite and paraphrases included, default shares of the
default 200-call budget), the sim as the model, a fresh cache. The sim's second prompt framing (the
loop's second looks, or `judge.second_framing`) repeats the first framing's outcome with probability
`--framing-correlation` (default 0.5). Results: a markdown table on stdout and
bench/results/judge_loop.json (per run also: planted wrong labels never judged and whether a check
had named them, second looks taken and what they verified; `diagnosis`: every wrong label not verified
and why - never judged, judged wrongly by the sim, or judged right and refused by verification, with
the signals it had - and `causes`, their counts; `claims`: every "contradicted" answer with its
signals, to try a verification rule on; `yield`: rows read per kind of pick and the wrong labels among
them; `cal_*`: the first judge's last calibration per kind, and `confirmed_wrong_labels`: planted wrong
labels among its confirmed cases).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from audit_agent.api import audit  # noqa: E402
from audit_agent.checks import KINDS  # noqa: E402
from audit_agent.dataset import Dataset  # noqa: E402
from audit_agent.features.classifier import out_of_fold  # noqa: E402
from judge_sim import JudgeSim, Truth, normalize  # noqa: E402
from planting import most_confused, plant_label_noise  # noqa: E402

SUPPORT = ROOT / "fixtures" / "support"
BANKING = ROOT.parent.parent / "shared" / "data" / "banking77" / "train.csv"
if not BANKING.exists():
    BANKING = Path("/work/shared/data/banking77/train.csv")


@dataclass
class Case:
    """A training file with planted wrong labels: `flips` row id -> true label."""

    name: str
    train: Path
    eval: Path | None
    real: Path | None
    flips: dict[str, str]
    truth: Truth
    rows: int
    conflicts: frozenset[str] = frozenset()
    """Rows of planted near-duplicate pairs with different labels (either label is defensible)."""


def support_case() -> Case:
    planted = json.loads((SUPPORT / "planted.json").read_text(encoding="utf-8"))
    flips = {p["id"]: p["true"] for p in planted["label_flip"]}
    with open(SUPPORT / "train.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    truth = Truth.from_pairs([r["text"] for r in rows], [flips.get(r["id"], r["label"]) for r in rows])
    flips = wrong_labels(pd.DataFrame(rows), truth)
    conflicts = frozenset(rid for pair in planted["label_conflict"] for rid in pair["ids"])
    return Case("support", SUPPORT / "train.csv", SUPPORT / "eval.csv", SUPPORT / "real.csv", flips, truth, len(rows),
                conflicts)


def banking_case(out_dir: Path, labels: int, per_label: int, rate: float, seed: int) -> Case:
    df = pd.read_csv(BANKING)
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(sorted(df["category"].unique()), size=labels, replace=False))
    parts = [df[df["category"] == c].sample(n=per_label, random_state=seed) for c in chosen]
    clean = pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    clean = pd.DataFrame({"id": [f"b{i:04d}" for i in range(len(clean))], "text": clean["text"].astype(str),
                          "label": clean["category"].astype(str)})
    base = out_of_fold(Dataset(path=Path("clean.csv"), frame=clean), folds=5, seed=seed)
    target = most_confused(base.given, base.predicted, len(base.classes))
    confusable = {base.classes[i]: base.classes[j] for i, j in enumerate(target)}
    planted = plant_label_noise(clean["label"].to_numpy(), rate, confusable, seed=seed + 1)
    noisy = clean.assign(label=planted.labels)
    path = out_dir / "banking77_sample.csv"
    noisy.to_csv(path, index=False)
    truth = Truth.from_pairs(clean["text"].tolist(), clean["label"].tolist())
    return Case("banking77", path, None, None, wrong_labels(noisy, truth), truth, len(clean))


def wrong_labels(frame: pd.DataFrame, truth: Truth) -> dict[str, str]:
    """Rows whose label is wrong by the truth the simulated judge knows: the planted flips, plus a row
    whose text the sim cannot tell from another row's (its lookup folds case) when their labels differ."""
    out = {}
    for rid, text, label in zip(frame["id"].astype(str), frame["text"].astype(str), frame["label"].astype(str),
                                strict=True):
        hit = truth.lookup(text)
        if hit is not None and hit[0] != label:
            out[rid] = hit[0]
    return out


def run_case(case: Case, accuracy: float, seed: int, work: Path, *, second: bool = False,
             budget: int | None = None, judge: dict[str, Any] | None = None,
             framing_correlation: float = 0.5) -> dict[str, Any]:
    sims = [JudgeSim(case.truth, accuracy=accuracy, seed=seed, framing_correlation=framing_correlation).start()]
    if second:
        sims.append(JudgeSim(case.truth, accuracy=accuracy, seed=seed + 1000,
                             framing_correlation=framing_correlation).start())
    try:
        llm: dict[str, Any] = {"model": "openai/sim", "api_base": sims[0].api_base,
                               "cache_dir": str(work / f"cache-{case.name}-{accuracy}-{seed}-{second}"),
                               "max_concurrency": 8, "retries": 1, "backoff_seconds": 0.01, "request_timeout": 30.0}
        if budget is not None:
            llm["budget"] = {"max_calls": budget}
        judge = dict(judge or {})
        config: dict[str, Any] = {"seed": seed, "llm": llm, "sample": judge.pop("sample", {}), "judge": judge}
        if second:
            config["judge"]["second"] = {"model": "openai/sim2", "api_base": sims[1].api_base}
        t0 = time.perf_counter()
        events: list[dict[str, Any]] = []
        result = audit(case.train, case.eval, case.real, config=config, trace_sink=events.append)
        seconds = time.perf_counter() - t0
        stats = sims[0].stats()
        right = {normalize(d.text) for d in sims[0].decisions if d.correct and d.true is not None and d.given != d.true}
    finally:
        for sim in sims:
            sim.stop()
    texts = dict(zip(*(pd.read_csv(case.train, dtype=str)[c] for c in ("id", "text")), strict=True))
    stats["flips_answered_right"] = sum(normalize(texts[rid]) in right for rid in case.flips)
    stats["judged_rows"] = {e["row_id"] for e in events if e.get("event") == "pick" and e.get("kind") != "canary"}
    stats["looked_rows"] = {e["row_id"] for e in events if e.get("event") == "pick" and e.get("kind") == "second_look"}
    out = measure(case, accuracy, seed, result.run, stats, seconds)
    out.update(calibration_bias(case, events))
    out["diagnosis"] = diagnose(case, result.run, events)
    out["causes"] = dict(Counter(d["cause"] for d in out["diagnosis"]))
    out["claims"] = claims(case, result.run, events)
    out["yield"] = pick_yield(case, result.run, events)
    return out


def calibration_bias(case: Case, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The first judge's last calibration: its counts per kind, and the confirmed cases from the random
    sample whose label is in fact wrong (scored wrong when the judge rightly says "contradicted")."""
    cals = [e for e in events if e.get("event") == "calibration" and e.get("judge") == "first"]
    if not cals:
        return {}
    last = cals[-1]
    rows = last.get("confirmed_rows") or []
    wrong = sorted(set(rows) & set(case.flips))
    said = {e["row_id"]: e["verdict"] for e in events if e.get("event") == "verdict" and e.get("judge") == "first"
            and e["row_id"] in wrong}
    return {"cal_swapped": last.get("swapped"), "cal_swapped_correct": last.get("swapped_correct"),
            "cal_confirmed": last.get("confirmed"), "cal_confirmed_correct": last.get("confirmed_correct"),
            "cal_confirmed_sample": last.get("confirmed_sample"), "cal_confirmed_followup": last.get("confirmed_followup"),
            "cal_rounds": [e["round"] for e in cals],
            "confirmed_wrong_labels": wrong, "confirmed_wrong_said": said}


def pick_yield(case: Case, run: Any, events: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows read per kind of pick (follow-ups split into label pairs, labels, frames and doubted rows)
    and how many of them carry a wrong label; and the rows the classifier doubts (top label another
    one, own label p < DOUBT_MAX_P) that were never judged, with the wrong labels among them."""
    from audit_agent.jobs.judge_followup import DOUBT_MAX_P

    by_kind: dict[str, list[int]] = {}
    judged: set[str] = set()
    for e in events:
        if e.get("event") != "pick" or e.get("kind") in ("canary", "second_look"):
            continue
        judged.add(e["row_id"])
        kind = e["kind"]
        if kind == "followup":
            reason = str(e.get("reason"))
            kind += ": doubted" if reason.startswith("the classifier doubts") else \
                ": label" if reason.startswith("follow-up label") else ": pair" if "->" in reason else ": other"
        row = by_kind.setdefault(f"r{e['round']} {kind}", [0, 0])
        row[0] += 1
        row[1] += e["row_id"] in case.flips
    ranks = _oof_ranks(run)
    doubted = [0, 0]
    if ranks is not None:
        labels = [str(v) for v in run.ctx.train.frame["label"].tolist()]
        for rid, pos in ranks[0].items():
            own = ranks[2][pos][ranks[1].index(labels[pos])]
            if rid not in judged and own < DOUBT_MAX_P and ranks[1][int(np.argmax(ranks[2][pos]))] != labels[pos]:
                doubted[0] += 1
                doubted[1] += rid in case.flips
    return {"picks": {k: {"rows": v[0], "wrong_labels": v[1]} for k, v in sorted(by_kind.items())},
            "doubted_unjudged": {"rows": doubted[0], "wrong_labels": doubted[1]}}


def _oof_ranks(run: Any) -> tuple[dict[str, int], list[str], Any] | None:
    """Row id -> position, the classes and the OOF probabilities the audit's verification read."""
    oof = run.ctx.features.oof_if_computed()
    if oof is None:
        return None
    ids = [str(i) for i in run.ctx.train.frame["id"].tolist()]
    return {rid: pos for pos, rid in enumerate(ids)}, [str(c) for c in oof.classes], np.asarray(oof.probs)


def _rank(ranks: tuple[dict[str, int], list[str], Any] | None, rid: str, label: str) -> int | None:
    """1 = the classifier's top label for the row."""
    if ranks is None or label not in ranks[1] or rid not in ranks[0]:
        return None
    row = ranks[2][ranks[0][rid]]
    return int((row > row[ranks[1].index(label)]).sum()) + 1


def _prob(ranks: tuple[dict[str, int], list[str], Any] | None, rid: str, label: str) -> float | None:
    if ranks is None or label not in ranks[1] or rid not in ranks[0]:
        return None
    return round(float(ranks[2][ranks[0][rid]][ranks[1].index(label)]), 4)


def _answers(events: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Row id -> judge role -> its verdict merged with its last verification (a second canary batch
    re-verifies every answer: the last one counts)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for e in events:
        if e.get("event") == "verdict":
            out.setdefault(e["row_id"], {})[e["judge"]] = {"verdict": e["verdict"], "best_label": e["best_label"],
                                                           "quote": e.get("evidence")}
        elif e.get("event") == "verification" and e["row_id"] in out and e["judge"] in out[e["row_id"]]:
            out[e["row_id"]][e["judge"]]["check"] = {k: e.get(k) for k in (
                "verified", "failed_because", "quote_found", "p_best", "p_given", "oof_top", "oof_margin",
                "knn_labels", "knn_majority", "conflict_group", "neighbour_labels", "backed_by", "min_backing",
                "judge_informative")}
    return out


def diagnose(case: Case, run: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every planted wrong label that did not become a verified finding, and why:
    `never_judged` (with the checks that named it and the plan's size), `judge_wrong` (no answer was
    "contradicted" naming the true label), `refused_quote` / `refused_backing` / `refused_informative`
    (an answer was right, verification refused it; the signals it had), `right_label_not_reported`."""
    verified = {str(f.rows[0]) for f in run.findings if f.check == "judge_contradicted" and f.verified}
    named: dict[str, list[str]] = {}
    for f in run.findings:
        if f.check in KINDS and KINDS[f.check].label_in_doubt and f.split == "train" and f.source == "check":
            for r in f.rows:
                named.setdefault(str(r), []).append(f.check)
    picks: dict[str, list[str]] = {}
    for e in events:
        if e.get("event") == "pick" and e.get("kind") != "canary":
            picks.setdefault(e["row_id"], []).append(f"r{e['round']} {e['kind']}: {str(e.get('reason'))[:60]}")
    answers = _answers(events)
    ranks = _oof_ranks(run)
    out = []
    given = dict(zip(*(pd.read_csv(case.train, dtype=str)[c] for c in ("id", "label")), strict=True))
    for rid, true in sorted(case.flips.items()):
        if rid in verified:
            continue
        rec: dict[str, Any] = {"row": rid, "given": given[rid], "true": true, "named_by": sorted(set(named.get(rid, []))),
                               "picks": picks.get(rid, []), "rank_true": _rank(ranks, rid, true),
                               "rank_given": _rank(ranks, rid, given[rid]), "p_given": _prob(ranks, rid, given[rid]),
                               "answers": answers.get(rid, {})}
        right = {role: a for role, a in rec["answers"].items()
                 if a["verdict"] == "contradicted" and a["best_label"] == true}
        if rid not in picks:
            rec["cause"] = "never_judged"
        elif not right:
            rec["cause"] = "judge_wrong"
        else:
            checks = [a.get("check") or {} for a in right.values()]
            reasons = [" ".join(c.get("failed_because") or []) for c in checks]
            if any("not informative" in r for r in reasons):
                rec["cause"] = "refused_informative"
            elif all("signal" in r or "other label" in r for r in reasons):
                rec["cause"] = "refused_backing"
            elif any(r for r in reasons):
                rec["cause"] = "refused_quote"
            else:
                rec["cause"] = "right_label_not_reported"
        out.append(rec)
    return out


def claims(case: Case, run: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every "contradicted" answer on a training row with its signals and whether it is right (the row's
    label is wrong and the claim names the true label): what a verification rule can be tried on."""
    ranks = _oof_ranks(run)
    given = dict(zip(*(pd.read_csv(case.train, dtype=str)[c] for c in ("id", "label")), strict=True))
    out = []
    for rid, per_role in _answers(events).items():
        if rid not in given:
            continue
        for role, a in per_role.items():
            if a["verdict"] != "contradicted" or "check" not in a:
                continue
            out.append({"row": rid, "judge": role, "given": given[rid], "best": a["best_label"],
                        "right": case.flips.get(rid) == a["best_label"], "flip": rid in case.flips,
                        "rank_best": _rank(ranks, rid, a["best_label"]), **a["check"]})
    return out


def measure(case: Case, accuracy: float, seed: int, run: Any, stats: dict[str, Any], seconds: float) -> dict[str, Any]:
    judge = run.judge
    verified = [f for f in run.findings if f.check == "judge_contradicted" and f.verified]
    hits = [f for f in verified if str(f.rows[0]) in case.flips]
    right_label = [f for f in hits if f.evidence.best_label == case.flips[str(f.rows[0])]]
    label_issue = {str(r) for f in run.findings if f.check == "label_issue" for r in f.rows}
    beyond = [f for f in hits if str(f.rows[0]) not in label_issue]
    judged_flips = len({str(r) for f in run.findings if f.source == "judge" for r in f.rows} & set(case.flips))
    judged_rows = stats.pop("judged_rows")
    looked_rows = stats.pop("looked_rows")
    named = {str(r) for f in run.findings if f.check in KINDS and KINDS[f.check].label_in_doubt
             and f.split == "train" and f.source == "check" for r in f.rows}
    looks = judge.second_looks
    false = sorted(str(f.rows[0]) for f in verified if str(f.rows[0]) not in case.flips)
    cal = judge.calibration
    est = judge.error_estimate
    true_acc = stats["correct"] / stats["judge_requests"] if stats["judge_requests"] else None
    return {
        "dataset": case.name, "rows": case.rows, "flips": len(case.flips), "accuracy": accuracy, "seed": seed,
        "rows_judged": judge.rows_judged, "real_rows": judge.real_rows_judged, "canaries": judge.canaries_judged,
        "verified": len(verified), "verified_flips": len(hits), "right_label": len(right_label),
        "precision": round(len(hits) / len(verified), 3) if verified else None,
        "recall": round(len(hits) / len(case.flips), 3) if case.flips else None,
        "beyond_label_issue": len(beyond), "flips_in_label_issue": len(set(case.flips) & label_issue),
        "false_verified": false, "false_on_conflict_pairs": sum(rid in case.conflicts for rid in false),
        "flips_claimed_any": judged_flips, "flips_judged": len(judged_rows & set(case.flips)),
        "flips_answered_right": stats["flips_answered_right"],
        "flips_named_by_checks": len(set(case.flips) & named),
        "flips_not_judged": sorted(set(case.flips) - judged_rows),
        "flips_not_judged_named": sorted((set(case.flips) - judged_rows) & named),
        "second_looks": looks.taken, "second_look_cap": looks.cap, "second_look_verified": looks.new_verified,
        "second_look_outcomes": looks.outcomes, "second_look_reasons": looks.by_reason,
        "second_look_flips": len(set(case.flips) & looked_rows),
        "flips_verified_by_second_look": sum(f.evidence.judge == "second_look" for f in hits),
        "suspects_named": judge.plan.suspects_named, "suspects_planned": judge.plan.suspects_planned,
        "followup_budget": judge.plan.followup_budget, "rows_by_kind": judge.plan.rows_by_kind,
        "canary_accuracy": cal.accuracy if cal else None, "canary_low": cal.low if cal else None,
        "canary_high": cal.high if cal else None, "informative": cal.informative if cal else None,
        "sim_accuracy": round(true_acc, 3) if true_acc is not None else None,
        "error_rate": est.rate if est else None, "error_low": est.low if est else None,
        "error_high": est.high if est else None, "true_error_rate": round(len(case.flips) / case.rows, 4),
        "kappa": judge.agreement.kappa if judge.agreement else None,
        "stop": judge.stop_kind, "calls": judge.calls, "seconds": round(seconds, 1),
    }


def table(results: list[dict[str, Any]]) -> str:
    head = ("| dataset | judge acc | seed | rows judged (real + canaries) + second looks | verified | verified flips "
            "(by a second look) | precision | recall | beyond label_issue | flips never judged | judge acc est. "
            "[95% CI] | within 0.1 of p | swapped right / asked; confirmed right / cases (free) | sim's acc "
            "| error rate est. [CI] vs true | stop |")
    lines = [head, "|" + "|".join("---" for _ in range(16)) + "|"]

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    for r in results:
        est = r["canary_accuracy"]
        near = "-" if est is None else "yes" if abs(est - r["accuracy"]) <= 0.1 + 1e-9 else f"no ({est - r['accuracy']:+.2f})"
        free = (r.get("cal_confirmed_sample") or 0) + (r.get("cal_confirmed_followup") or 0)
        lines.append(
            f"| {r['dataset']} | {r['accuracy']} | {r['seed']} | {r['rows_judged']} ({r['real_rows']} + {r['canaries']}) "
            f"+ {r['second_looks']} | {r['verified']} | {r['verified_flips']} of {r['flips']} "
            f"({r['flips_verified_by_second_look']}) | {pct(r['precision'])} | {pct(r['recall'])} "
            f"| {r['beyond_label_issue']} | {len(r['flips_not_judged'])} | {pct(est)} [{pct(r['canary_low'])}-{pct(r['canary_high'])}]"
            f"{'' if r['informative'] else ' not informative'} | {near} "
            f"| {r.get('cal_swapped_correct')}/{r.get('cal_swapped')}; {r.get('cal_confirmed_correct')}/"
            f"{r.get('cal_confirmed')} ({free}) | {pct(r['sim_accuracy'])} "
            f"| {pct(r['error_rate'])} [{pct(r['error_low'])}-{pct(r['error_high'])}] vs {r['true_error_rate']:.3f} "
            f"| {r['stop']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["support", "banking77"], choices=["support", "banking77"])
    ap.add_argument("--accuracies", nargs="+", type=float, default=[0.6, 0.7, 0.9, 1.0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--budget", type=int, default=None, help="llm.budget.max_calls (default: the default, 200)")
    ap.add_argument("--second-judge", action="store_true", help="a second simulated model (other seed)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="judge settings, e.g. strong_canary_low=0 sample_share=0.3 (JSON values); "
                         "sample='{\"per_label\": 2}' sets the sample section")
    ap.add_argument("--framing-correlation", type=float, default=0.5,
                    help="the sim's probability that a second prompt framing repeats the first one's outcome")
    ap.add_argument("--b77-labels", type=int, default=20)
    ap.add_argument("--b77-per-label", type=int, default=40)
    ap.add_argument("--b77-rate", type=float, default=0.05)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "judge_loop.json")
    args = ap.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in args.datasets:
            for seed in args.seeds:
                case = support_case() if name == "support" else banking_case(
                    work, args.b77_labels, args.b77_per_label, args.b77_rate, seed)
                for acc in args.accuracies:
                    r = run_case(case, acc, seed, work, second=args.second_judge, budget=args.budget,
                                 judge={k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)},
                                 framing_correlation=args.framing_correlation)
                    results.append(r)
                    print(json.dumps({k: v for k, v in r.items() if k not in ("claims", "diagnosis")}),
                          file=sys.stderr, flush=True)
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores",
                                    "load": os.getloadavg(), "results": results}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
