"""Out-of-sample choice of `checks.label_issue_threshold`: sweep on one dataset, report on the other.

    python bench/quality.py --sweep                       # both directions, seeds 0 1 2, 2/5/10 % noise
    python bench/quality.py --sweep --choose-on banking77 # one direction only

For every dataset, seed and noise rate the planted-noise run of bench/quality.py is made once (planted
flips, half into each label's most confusable label as a clean seed-0 out-of-fold fit sees it -> noisy
out-of-fold fit with that seed's folds) and
`detect_label_issues`' per-row score is kept (the threshold only decides which scores are flagged, so
one fit serves the whole grid). Scores are cached in bench/results/sweep/ so the choice can be redone
without refitting. The threshold chosen on dataset A maximises the mean objective (F1, or F0.5 which
weighs precision twice as much as recall) over A's noise rates and seeds; the figures reported for it
are dataset B's, which the choice never saw.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from audit_agent.features.label_signals import detect_label_issues
from planting import most_confused, plant_label_noise
from quality_data import fit_oof, load_data

RESULTS = Path(__file__).resolve().parent / "results" / "sweep"
GRID = tuple(sorted(float(x) for x in np.round(np.r_[np.arange(0.90, 0.975, 0.01), np.arange(0.98, 0.9976, 0.0025),
                                               0.997, 0.9985, 0.999, 0.9995], 4)))
OBJECTIVES = {"F1": 1.0, "F0.5": 0.5}


@dataclass
class Scored:
    """One planted-noise run: our per-row scores, the truth and cleanlab's answer on the same probabilities."""

    dataset: str
    rate: float
    seed: int
    score: np.ndarray
    truth: np.ndarray
    confusable: np.ndarray
    cleanlab_flags: np.ndarray
    cleanlab_rank: np.ndarray
    oof_seconds: float
    oof_accuracy: float


def _cleanlab(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's find_label_issues flags (prune_by_noise_rate) and its self-confidence ranking."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    idx = find_label_issues(labels, probs, filter_by="prune_by_noise_rate",
                            return_indices_ranked_by="self_confidence", n_jobs=1)
    flags = np.zeros(len(labels), dtype=bool)
    flags[idx] = True
    rank = np.argsort(get_label_quality_scores(labels, probs, method="self_confidence"), kind="stable")
    return flags, rank


def _path(name: str, seed: int, rate: float) -> Path:
    return RESULTS / f"{name.replace(':', '_labels')}_seed{seed}_noise{round(rate * 100)}.npz"


def small_name(name: str, labels: int) -> str:
    """The key of a small-data variant: `labels` labels of `name` drawn per seed, all their rows."""
    return f"{name}:{labels}"


def _subset(clean: pd.DataFrame, labels: int, seed: int) -> pd.DataFrame:
    """All rows of `labels` labels drawn with `seed` (a small, few-label dataset cut from a large one)."""
    keep = np.random.default_rng(1000 + seed).choice(sorted(clean["label"].unique()), labels, replace=False)
    sub = clean[clean["label"].isin(keep)].reset_index(drop=True)
    return sub.assign(id=[str(i) for i in range(len(sub))])


def _confusable(name: str, clean: pd.DataFrame, refit: bool) -> dict[str, str]:
    """Each label's most confusable other label, from the clean out-of-fold fit with seed 0 (a property
    of the dataset, so one fit serves every seed; cached as JSON)."""
    import json

    path = RESULTS / f"{name}_confusable.json"
    if path.exists() and not refit:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    base = fit_oof(clean, 0)
    target = most_confused(base.given, base.predicted, len(base.classes))
    confusable = {str(base.classes[i]): str(base.classes[j]) for i, j in enumerate(target)}
    path.write_text(json.dumps(confusable, indent=0), encoding="utf-8")
    return confusable


def score_runs(names: list[str], rates: tuple[float, ...], seeds: list[int], *, refit: bool = False) -> list[Scored]:
    """Every (dataset, seed, rate) run, from the cache when present (unless `refit`)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    runs: list[Scored] = []
    for name in names:
        base_name, _, labels = name.partition(":")
        full = None
        confusable = None
        for seed in seeds:
            clean = None
            if labels:
                confusable = None  # another label subset per seed
            for rate in rates:
                path = _path(name, seed, rate)
                if path.exists() and not refit:
                    z = np.load(path)
                    runs.append(Scored(name, rate, seed, z["score"], z["truth"], z["confusable"], z["cl_flags"],
                                       z["cl_rank"], float(z["oof_seconds"]), float(z["oof_accuracy"])))
                    continue
                if full is None:
                    full = load_data(base_name)
                if clean is None:
                    clean = _subset(full, int(labels), seed) if labels else full
                if confusable is None:
                    confusable = _confusable(name if not labels else f"{base_name}_{labels}labels_seed{seed}",
                                             clean, refit)
                planted = plant_label_noise(clean["label"].to_numpy(), rate, confusable, seed=seed + 1)
                t = time.perf_counter()
                oof = fit_oof(clean.assign(label=planted.labels), seed)
                secs = time.perf_counter() - t
                res = detect_label_issues(oof, with_cleanlab=False)
                probs = oof.probs.astype(np.float64)
                probs /= probs.sum(axis=1, keepdims=True)
                cl_flags, cl_rank = _cleanlab(oof.given, probs)
                run = Scored(name, rate, seed, res.score, planted.flipped,
                             planted.flipped & (planted.kind == "confusable"), cl_flags, cl_rank, secs, oof.accuracy())
                np.savez_compressed(path, score=run.score, truth=run.truth, confusable=run.confusable,
                                    cl_flags=cl_flags, cl_rank=cl_rank, oof_seconds=secs, oof_accuracy=run.oof_accuracy)
                print(f"{name} seed {seed} noise {rate:.0%}: out-of-fold {secs:.1f} s", flush=True)
                runs.append(run)
    return runs


def prf(flags: np.ndarray, truth: np.ndarray) -> tuple[float, float, float, float]:
    """Precision, recall, F1 and F0.5 of boolean flags against boolean truth."""
    tp = int((flags & truth).sum())
    p = tp / flags.sum() if flags.sum() else 0.0
    r = tp / truth.sum() if truth.sum() else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    f05 = 1.25 * p * r / (0.25 * p + r) if p + r else 0.0
    return p, r, f1, f05


def sweep_table(runs: list[Scored], grid: tuple[float, ...] = GRID) -> pd.DataFrame:
    """One row per (run, threshold): flagged, P, R, F1, F0.5."""
    rows = []
    for run in runs:
        for t in grid:
            flags = run.score >= t
            p, r, f1, f05 = prf(flags, run.truth)
            rows.append({"dataset": run.dataset, "rate": run.rate, "seed": run.seed, "threshold": t,
                         "flagged": int(flags.sum()), "P": p, "R": r, "F1": f1, "F0.5": f05})
    return pd.DataFrame(rows)


def choose(table: pd.DataFrame, keys: str | list[str], objective: str) -> float:
    """The grid threshold with the highest mean `objective` over noise rates and seeds; with several
    keys (one dataset at several sizes) the highest WORST of their means (ties: the higher threshold)."""
    keys = [keys] if isinstance(keys, str) else keys
    per_key = table[table.dataset.isin(keys)].groupby(["threshold", "dataset"])[objective].mean().unstack()
    worst = per_key.min(axis=1)
    return float(worst[worst >= worst.max() - 1e-12].index.max())


def at_threshold(runs: list[Scored], dataset: str, threshold: float) -> pd.DataFrame:
    """Per noise rate, mean (and min-max over seeds) of ours at `threshold` and of cleanlab, plus both P@k."""
    rows = []
    for run in (r for r in runs if r.dataset == dataset):
        p, r, f1, _ = prf(run.score >= threshold, run.truth)
        cp, cr, cf1, _ = prf(run.cleanlab_flags, run.truth)
        k = int(run.truth.sum())
        ours_rank = np.argsort(-run.score, kind="stable")
        rows.append({"rate": run.rate, "seed": run.seed, "flips": k, "flagged": int((run.score >= threshold).sum()),
                     "P": p, "R": r, "F1": f1, "R_confusable": float(((run.score >= threshold) & run.confusable).sum()
                                                                    / max(run.confusable.sum(), 1)),
                     "P@k": float(run.truth[ours_rank[:k]].mean()),
                     "cl_flagged": int(run.cleanlab_flags.sum()), "cl_P": cp, "cl_R": cr, "cl_F1": cf1,
                     "cl_P@k": float(run.truth[run.cleanlab_rank[:k]].mean())})
    return pd.DataFrame(rows)


def _cell(values: pd.Series) -> str:
    """Mean over seeds, with the range when there are several."""
    if len(values) == 1:
        return f"{values.iloc[0]:.3f}"
    return f"{values.mean():.3f} ({values.min():.2f}-{values.max():.2f})"


def out_of_sample_rows(runs: list[Scored], direction: str, dataset: str, threshold: float) -> list[str]:
    """Markdown table rows for `dataset` scored at `threshold` (chosen elsewhere, named by `direction`)."""
    frame = at_threshold(runs, dataset, threshold)
    out = []
    for rate, grp in frame.groupby("rate"):
        out.append(f"| {direction} | {dataset} | {rate:.0%} | {threshold:g} | {grp.flips.iloc[0]} | "
                   f"{grp.flagged.mean():.0f} | {_cell(grp.P)} | {_cell(grp.R)} | **{_cell(grp.F1)}** | "
                   f"{_cell(grp.R_confusable)} | {_cell(grp.cl_P)} | {_cell(grp.cl_R)} | {_cell(grp.cl_F1)} | "
                   f"{_cell(grp['P@k'])} | {_cell(grp['cl_P@k'])} |")
    return out


HEAD = ("| chosen on -> scored on | dataset | noise | threshold | flips | flagged | P | R | F1 | "
        "R (confusable flips) | cleanlab P | cleanlab R | cleanlab F1 | P@k ours | P@k cleanlab |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def summary_table(table: pd.DataFrame, groups: dict[str, list[str]], choose_on: list[str]) -> str:
    """Per objective and direction: the threshold chosen on dataset A (all its sizes), its in-sample
    means there, and the means on every size of dataset B at that threshold (over noise rates and seeds)."""
    lines = ["| objective | chosen on | threshold | scored on | in or out of sample | F1 | P | R |",
             "|---|---|---|---|---|---|---|---|"]
    for objective in OBJECTIVES:
        for a in choose_on:
            t = choose(table, groups[a], objective)
            for b, keys in groups.items():
                for key in keys:
                    sel = table[(table.dataset == key) & (table.threshold == t)]
                    where = "in (chosen here)" if b == a else "**out**"
                    lines.append(f"| mean {objective} | {a} | {t:g} | {key} | {where} | {sel.F1.mean():.3f} | "
                                 f"{sel.P.mean():.3f} | {sel.R.mean():.3f} |")
    return "\n".join(lines)


def curve_table(table: pd.DataFrame, names: list[str]) -> str:
    """Mean F1 / F0.5 / P / R per threshold and dataset (over noise rates and seeds)."""
    lines = ["| threshold | " + " | ".join(f"{n}: F1 / F0.5 / P / R" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for t in sorted(table.threshold.unique()):
        cells = []
        for n in names:
            sel = table[(table.dataset == n) & (table.threshold == t)]
            cells.append(f"{sel.F1.mean():.3f} / {sel['F0.5'].mean():.3f} / {sel.P.mean():.3f} / {sel.R.mean():.3f}")
        lines.append(f"| {t:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def n_labels(key: str) -> int:
    """Labels of a run key: "banking77" -> 77, "clinc150" -> 150, "banking77:10" -> 10."""
    name, _, labels = key.partition(":")
    return int(labels) if labels else {"banking77": 77, "clinc150": 150}[name]


RULE_GRID = tuple(float(c) for c in np.round(np.arange(0.1, 1.51, 0.05), 2))


def rule_table(runs: list[Scored], grid: tuple[float, ...] = RULE_GRID) -> pd.DataFrame:
    """The label-count rule threshold = 1 - c / k (k = number of labels), one row per (run, c)."""
    rows = []
    for run in runs:
        for c in grid:
            t = 1.0 - c / n_labels(run.dataset)
            p, r, f1, f05 = prf(run.score >= t, run.truth)
            rows.append({"dataset": run.dataset, "rate": run.rate, "seed": run.seed, "threshold": c,
                         "P": p, "R": r, "F1": f1, "F0.5": f05})
    return pd.DataFrame(rows)


def rule_report(runs: list[Scored], groups: dict[str, list[str]], fixed: float) -> str:
    """c chosen on one dataset (worst of its sizes' mean F1), scored on the other's sizes, beside the
    fixed threshold `fixed`."""
    rules, table = rule_table(runs), sweep_table(runs, grid=(fixed,))
    lines = ["| chosen on | c | scored on | labels | threshold 1 - c/k | in or out of sample | F1 / P / R (rule) | "
             f"F1 / P / R (fixed {fixed:g}) |", "|---|---|---|---|---|---|---|---|"]
    for a in groups:
        c = choose(rules, groups[a], "F1")
        for b, keys in groups.items():
            for key in keys:
                r = rules[(rules.dataset == key) & (rules.threshold == c)]
                f = table[table.dataset == key]
                lines.append(f"| {a} | {c:g} | {key} | {n_labels(key)} | {1 - c / n_labels(key):.4f} | "
                             f"{'in' if a == b else '**out**'} | {r.F1.mean():.3f} / {r.P.mean():.3f} / "
                             f"{r.R.mean():.3f} | {f.F1.mean():.3f} / {f.P.mean():.3f} / {f.R.mean():.3f} |")
    return "\n".join(lines)


def report(runs: list[Scored], groups: dict[str, list[str]], choose_on: list[str], default: float,
           objective: str = "F1") -> str:
    """The markdown block: the choice per objective, the out-of-sample table (threshold chosen by
    `objective` on the other dataset), the shipped default, and the curves."""
    table = sweep_table(runs)
    keys = [k for ks in groups.values() for k in ks]
    lines = ["", summary_table(table, groups, choose_on)]
    lines += ["", f"Out of sample (threshold chosen by mean {objective} on the other dataset; mean over seeds, range "
              "in brackets; cleanlab is find_label_issues on the same probabilities, P@k the precision of each "
              "method's ranking at k = number of planted flips):", "", HEAD]
    for a in choose_on:
        t = choose(table, groups[a], objective)
        for b in (n for n in groups if n != a):
            for key in groups[b]:
                lines += out_of_sample_rows(runs, f"{a} -> {b}", key, t)
    lines += ["", f"At the shipped default {default:g}:", "", HEAD]
    for key in keys:
        lines += out_of_sample_rows(runs, "default", key, default)
    if any(len(ks) > 1 for ks in groups.values()):
        lines += ["", "A label-count rule instead of one threshold: threshold = 1 - c / k for k labels, c chosen "
                  "like the threshold (mean F1, worst size of the dataset), not used by the check:", "",
                  rule_report(runs, groups, default)]
    lines += ["", "Mean over noise rates and seeds, per threshold (F0.5 weighs precision twice as much as recall):", "",
              curve_table(table, keys)]
    return "\n".join(lines)
