"""Detection quality of `label_issue` on real public data with planted label noise, side by side
with cleanlab (and Datalab) on the SAME out-of-fold probabilities, in the same run.

    python bench/quality.py            # banking77 + clinc150 at 2%, 5%, 10% noise
    python bench/quality.py --quick    # banking77 at 5% only (smoke test)
    python bench/quality.py --sweep --seeds 0 1 2   # choose the threshold on one dataset, score on the other
    python bench/quality.py --sweep --choose-on banking77   # one direction only (see bench/quality_sweep.py)
    python bench/quality.py --embeddings --out /tmp/q.md   # also `label_issue` with the embedding vote

With --embeddings, `detect_label_issues` runs three times on the same out-of-fold probabilities: as
is and with the sentence-embedding neighbour vote (all-MiniLM-L6-v2 vectors of the rows, cached on
disk in .cache/audit-agent) in its two modes ("either": the larger of the TF-IDF and embedding
neighbour votes; "both": their mean), so the rows of a (dataset, noise) group differ only by that.

Noise: half of the flips go to a uniformly random other class, half to the class a clean
classifier confuses most with the true one (bench/planting.py). Our numbers come from
`audit_agent.features.label_signals.detect_label_issues`, the function the check itself calls.
Writes the table to docs/quality.md (or --out; only the part between its bench markers, so the
hand-written sections around it survive a rerun) and prints it.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from audit_agent.features.label_signals import detect_label_issues
from planting import most_confused, plant_label_noise
from quality_data import DATASETS, fit_oof, load_data
from quality_sweep import report, score_runs, small_name

RATES = (0.02, 0.05, 0.10)
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    dataset: str
    rate: float
    flips: int
    method: str
    flagged: int
    precision: float
    recall: float
    f1: float
    p_at_k: float
    recall_confusable: float
    seconds: float


def _cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def _row(dataset: str, rate: float, method: str, truth: np.ndarray, confusable: np.ndarray,
         flagged: np.ndarray, ranking: np.ndarray, seconds: float) -> Row:
    tp = int((flagged & truth).sum())
    p = tp / flagged.sum() if flagged.sum() else 0.0
    r = tp / truth.sum() if truth.sum() else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    k = int(truth.sum())
    p_at_k = float(truth[ranking[:k]].mean()) if k else 0.0
    rc = float((flagged & confusable).sum() / confusable.sum()) if confusable.sum() else 0.0
    return Row(dataset, rate, k, method, int(flagged.sum()), p, r, f1, p_at_k, rc, seconds)


def _peers(labels: np.ndarray, probs: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """cleanlab find_label_issues (prune_by_noise_rate, the standard recipe) and Datalab."""
    from cleanlab import Datalab
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    out = {}
    n = len(labels)
    t = time.perf_counter()
    idx = find_label_issues(labels, probs, filter_by="prune_by_noise_rate",
                            return_indices_ranked_by="self_confidence", n_jobs=1)
    flagged = np.zeros(n, dtype=bool)
    flagged[idx] = True
    ranking = np.argsort(get_label_quality_scores(labels, probs, method="self_confidence"), kind="stable")
    out["cleanlab find_label_issues"] = (flagged, ranking, time.perf_counter() - t)
    t = time.perf_counter()
    try:
        lab = Datalab(data={"label": labels}, label_name="label", verbosity=0)
    except ImportError:  # Datalab needs cleanlab[datalab] extras, not installed here
        return out
    lab.find_issues(pred_probs=probs, issue_types={"label": {}})
    issues = lab.get_issues("label")
    ranking = np.argsort(issues["label_score"].to_numpy(), kind="stable")
    out["cleanlab Datalab"] = (issues["is_label_issue"].to_numpy(bool), ranking, time.perf_counter() - t)
    return out


DEEPCHECKS_PY = Path("/tmp/dcvenv/bin/python")
_DEEPCHECKS_SCRIPT = """
import json, sys, time
import pandas as pd
from deepchecks.nlp import TextData
from deepchecks.nlp.checks import ConflictingLabels
df = pd.read_csv(sys.argv[1], keep_default_na=False)
t = time.time()
data = TextData(raw_text=df.text.tolist(), label=df.label.tolist(), task_type="text_classification")
result = ConflictingLabels(remove_stopwords=False).run(data, with_display=False)  # stopwords need an nltk download
value = result.value
table = value.get("conflicting_samples", value.get("ambiguous_samples"))
ids = table.index.get_level_values("Sample ID").tolist()
print(json.dumps({"ids": [int(i) for i in ids], "seconds": time.time() - t}))
"""


def _deepchecks(frame: pd.DataFrame) -> tuple[np.ndarray, float] | str:
    """Deepchecks NLP's label check (ConflictingLabels: identical texts with different labels), run in
    its own throwaway venv; returns the flags, or why it could not run."""
    import json
    import subprocess
    import tempfile

    if not DEEPCHECKS_PY.exists():
        return f"no Deepchecks venv at {DEEPCHECKS_PY}"
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as fh:
        frame[["text", "label"]].to_csv(fh, index=False)
    env = os.environ | {"DISABLE_DEEPCHECKS_ANONYMOUS_TELEMETRY": "True"}  # else it waits on the network
    proc = subprocess.run([str(DEEPCHECKS_PY), "-c", _DEEPCHECKS_SCRIPT, fh.name], capture_output=True,
                          text=True, timeout=900, env=env)
    Path(fh.name).unlink(missing_ok=True)
    if proc.returncode != 0:
        return "Deepchecks failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:300]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    flags = np.zeros(len(frame), dtype=bool)
    flags[out["ids"]] = True
    return flags, float(out["seconds"])


def _deepchecks_about() -> str:
    """Which Deepchecks ran, in what environment, and what its check can see."""
    import subprocess

    if not DEEPCHECKS_PY.exists():
        return ""
    proc = subprocess.run([str(DEEPCHECKS_PY), "-c", "import deepchecks, sklearn; "
                           "print(deepchecks.__version__, sklearn.__version__)"], capture_output=True, text=True)
    versions = proc.stdout.split()
    if proc.returncode != 0 or len(versions) != 2:
        return ""
    return (f"Deepchecks NLP {versions[0]} ran in its own venv ({DEEPCHECKS_PY.parent.parent}, scikit-learn "
            f"{versions[1]}: it fails with the newest scikit-learn). Its only label-quality check for text "
            "classification is ConflictingLabels: identical (normalised) texts carrying different labels, run with "
            "remove_stopwords=False (its stopword list is an nltk download, and this machine has no internet). It does "
            "not score single rows, so on planted flips of unique texts it can only find flips whose text also "
            "occurs elsewhere; its row is a reference, not a like-for-like detector.")


def _embed(texts: list[str]) -> np.ndarray:
    from audit_agent.features.embeddings import TextEmbedder

    return TextEmbedder(ROOT / ".cache" / "audit-agent", backend="torch")(texts)


def run(names: list[str], rates: tuple[float, ...], seed: int, embeddings: bool = False,
        peers: bool = True, oof_cache: Path | None = None) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    notes: list[str] = []
    for name in names:
        clean = load_data(name)
        vectors = _embed(clean["text"].tolist()) if embeddings else None
        t = time.perf_counter()
        base = fit_oof(clean, seed, oof_cache)
        notes.append(f"{name}: {len(clean)} rows, {len(base.classes)} labels, clean out-of-fold accuracy "
                     f"{base.accuracy():.3f} ({time.perf_counter() - t:.1f} s wall)")
        target = most_confused(base.given, base.predicted, len(base.classes))
        confusable = {base.classes[i]: base.classes[j] for i, j in enumerate(target)}
        for rate in rates:
            planted = plant_label_noise(clean["label"].to_numpy(), rate, confusable, seed=seed + 1)
            noisy = clean.assign(label=planted.labels)
            t = time.perf_counter()
            oof = fit_oof(noisy, seed, oof_cache)
            oof_s = time.perf_counter() - t
            truth = planted.flipped
            conf = truth & (planted.kind == "confusable")
            t = time.perf_counter()
            res = detect_label_issues(oof, with_cleanlab=False)
            ours_s = time.perf_counter() - t
            ranking = np.argsort(-res.score, kind="stable")
            rows.append(_row(name, rate, "ours: label_issue", truth, conf, res.flagged, ranking, ours_s))
            for mode in ("either", "both") if vectors is not None else ():
                t = time.perf_counter()
                emb = detect_label_issues(oof, with_cleanlab=False, embeddings=vectors, embedding_mode=mode)
                emb_s = time.perf_counter() - t
                rows.append(_row(name, rate, f"ours: label_issue + embedding vote ({mode})", truth, conf,
                                 emb.flagged, np.argsort(-emb.score, kind="stable"), emb_s))
            probs = oof.probs.astype(np.float64)
            probs /= probs.sum(axis=1, keepdims=True)
            for method, (flagged, rank, secs) in (_peers(oof.given, probs) if peers else {}).items():
                rows.append(_row(name, rate, method, truth, conf, flagged, rank, secs))
            dc = _deepchecks(noisy) if peers else "peers skipped (--no-peers)"
            about = _deepchecks_about()
            if about and about not in notes:
                notes.append(about)
            if isinstance(dc, str):
                if dc not in notes:
                    notes.append(dc)
            else:
                flags, secs = dc
                rows.append(_row(name, rate, "Deepchecks NLP ConflictingLabels", truth, conf, flags,
                                 np.argsort(~flags, kind="stable"), secs))
            notes.append(f"{name} @ {rate:.0%}: out-of-fold fit {oof_s:.1f} s wall (shared by all methods), "
                         f"noisy OOF accuracy {oof.accuracy():.3f}")
            print(_table([r for r in rows if r.dataset == name and r.rate == rate]), flush=True)
    return rows, notes


def _table(rows: list[Row]) -> str:
    head = ("| dataset | noise | flips | method | flagged | P | R | F1 | P@k | R (confusable flips) | s |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [f"| {r.dataset} | {r.rate:.0%} | {r.flips} | {r.method} | {r.flagged} | {r.precision:.3f} | "
             f"{r.recall:.3f} | **{r.f1:.3f}** | {r.p_at_k:.3f} | {r.recall_confusable:.3f} | {r.seconds:.2f} |"
             for r in rows]
    return "\n".join([head, *lines])


def _verdict(rows: list[Row]) -> str:
    out = []
    for (ds, rate), grp in pd.DataFrame([r.__dict__ for r in rows]).groupby(["dataset", "rate"]):
        ours = grp[grp.method == "ours: label_issue"].f1.iloc[0]
        line = f"- {ds} @ {rate:.0%}: ours F1 {ours:.3f}"
        cl = grp[grp.method == "cleanlab find_label_issues"].f1
        if len(cl):
            line += f" vs cleanlab {cl.iloc[0]:.3f} ({'>=' if ours >= cl.iloc[0] else 'BELOW'}; {ours - cl.iloc[0]:+.3f})"
        for mode in ("either", "both"):
            emb = grp[grp.method == f"ours: label_issue + embedding vote ({mode})"].f1
            if len(emb):
                line += f"; embedding vote ({mode}) {emb.iloc[0]:.3f} ({emb.iloc[0] - ours:+.3f})"
        out.append(line)
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="banking77 at 5%% noise only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "quality.md")
    ap.add_argument("--embeddings", action="store_true",
                    help="also run label_issue with the sentence-embedding neighbour vote (the embed extra)")
    ap.add_argument("--oof-cache", type=Path, default=None, help="folder to keep out-of-fold results in (reruns)")
    ap.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    ap.add_argument("--no-peers", action="store_true", help="skip cleanlab/Datalab/Deepchecks (faster)")
    ap.add_argument("--sweep", action="store_true",
                    help="sweep label_issue_threshold: choose on one dataset, report on the other")
    ap.add_argument("--choose-on", choices=list(DATASETS), action="append",
                    help="with --sweep: the dataset(s) the threshold is chosen on (default: each in turn)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="with --sweep: seeds")
    ap.add_argument("--refit", action="store_true", help="with --sweep: ignore the cached scores")
    ap.add_argument("--labels", type=int, nargs="*", default=[],
                    help="with --sweep: also score small variants (this many labels per seed, all their rows)")
    ap.add_argument("--objective", choices=["F1", "F0.5"], default="F1",
                    help="with --sweep: what the out-of-sample tables choose by (both are summarised)")
    args = ap.parse_args()
    if args.sweep:
        sweep_main(args)
        return
    names = ["banking77"] if args.quick else args.datasets
    rates = (0.05,) if args.quick else RATES
    load_before = os.getloadavg()
    t, c = time.perf_counter(), _cpu()
    rows, notes = run(names, rates, args.seed, embeddings=args.embeddings, peers=not args.no_peers,
                      oof_cache=args.oof_cache)
    wall, cpu = time.perf_counter() - t, _cpu() - c
    import cleanlab
    import sklearn

    cmd = ("python bench/quality.py" + (" --quick" if args.quick else "") + (" --embeddings" if args.embeddings else "")
           + (" --no-peers" if args.no_peers else "")
           + (f" --datasets {' '.join(args.datasets)}" if args.datasets != list(DATASETS) else ""))
    text = "\n".join([
        "## One seed, all peers: label-issue detection (planted label noise)",
        "",
        f"Command: `{cmd}` (seed {args.seed}). Machine: {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}, scikit-learn {sklearn.__version__}, cleanlab {cleanlab.__version__}. "
        f"Load average at start {load_before[0]:.1f} (1-minute; other jobs may share the machine). "
        f"Total {wall:.0f} s wall, {cpu:.0f} s CPU.",
        "",
        "Noise: a share of rows get a wrong label, half to a uniformly random other class, half to the class "
        "the clean out-of-fold classifier confuses most with the true one. All methods read the SAME "
        "out-of-fold probabilities (TF-IDF word+char, linear SVM, 5 folds, temperature-calibrated). "
        "`ours` is `detect_label_issues`, the function the `label_issue` check calls. P@k: precision of "
        "the k top-ranked rows, k = number of planted flips. Seconds: the detection step alone.",
        "",
        _table(rows),
        "",
        "F1, ours vs cleanlab find_label_issues:",
        "",
        _verdict(rows),
        "",
        "Notes:",
        "",
        *[f"- {n}" for n in notes],
        "",
    ])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(_merge(args.out, text), encoding="utf-8")
    print(text)


BEGIN, END = "<!-- bench/quality.py: begin -->", "<!-- bench/quality.py: end -->"
SWEEP_BEGIN, SWEEP_END = "<!-- bench/quality.py --sweep: begin -->", "<!-- bench/quality.py --sweep: end -->"


def _merge(path: Path, generated: str, begin: str = BEGIN, end: str = END) -> str:
    """The generated text between the begin/end markers of the existing file (hand-written sections
    around them are kept); appended when the file has no such markers."""
    block = f"{begin}\n{generated.rstrip()}\n{end}"
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if begin in old and end in old:
        return old[:old.index(begin)] + block + old[old.index(end) + len(end):]
    return (old.rstrip() + "\n\n" if old.strip() else "") + block + "\n"


def sweep_main(args: argparse.Namespace) -> None:
    """--sweep: score every (dataset, size, seed, rate) once, choose thresholds, write the out-of-sample block."""
    from audit_agent.config import CheckConfig

    load_before = os.getloadavg()
    t, c = time.perf_counter(), _cpu()
    groups = {n: [n] + [small_name(n, k) for k in args.labels] for n in DATASETS}
    runs = score_runs([k for ks in groups.values() for k in ks], RATES, args.seeds, refit=args.refit)
    wall, cpu = time.perf_counter() - t, _cpu() - c
    fits = sum(r.oof_seconds for r in runs)
    default = CheckConfig().label_issue_threshold
    cmd = "python bench/quality.py --sweep --seeds " + " ".join(map(str, args.seeds)) + (
        " --labels " + " ".join(map(str, args.labels)) if args.labels else "") + "".join(
        f" --choose-on {n}" for n in args.choose_on or []) + f" --objective {args.objective}"
    sizes = "; ".join(f"{k}: " + ", ".join(f"{len(r.score):,}" for r in runs if r.dataset == k and r.rate == RATES[0])
                      for ks in groups.values() for k in ks)
    text = "\n".join([
        "## Threshold chosen out of sample",
        "",
        f"Command: `{cmd}`. Machine: {os.cpu_count()} cores, load average at start {load_before[0]:.1f}. "
        f"This call: {wall:.0f} s wall, {cpu:.0f} s CPU; the {len(runs)} noisy out-of-fold fits it reads "
        f"({'made now' if fits and wall >= fits else 'cached in bench/results/sweep/'}) took {fits:.0f} s wall "
        f"when they were made. Noise {', '.join(f'{r:.0%}' for r in RATES)}; seeds {', '.join(map(str, args.seeds))} "
        "(the seed sets the planted rows and the folds). Rows per seed: " + sizes + "."
        + (" `NAME:K` is a small variant: K labels drawn per seed, all their rows, its confusable labels from a "
           "clean out-of-fold fit of that subset. A choice on a dataset maximises the worst of its sizes' mean "
           "objective." if args.labels else ""),
        report(runs, groups, args.choose_on or list(groups), default, args.objective),
        "",
    ])
    args.out.write_text(_merge(args.out, text, SWEEP_BEGIN, SWEEP_END), encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
