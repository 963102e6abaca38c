"""Planted paraphrase conflicts: the meaning-level detector (`features.semantic.conflict_pairs`)
against the lexical `conflicting_labels` check on the same data.

    python bench/paraphrase_conflicts.py                     # tune on CLINC150, report on Banking77
    python bench/paraphrase_conflicts.py --relabel closest   # the hard case: the most similar intent
    python bench/paraphrase_conflicts.py --clean-base        # a second count: base sets without their own conflicts
    python bench/paraphrase_conflicts.py --adjudicated bench/adjudication/banking77_original_pairs.csv
    (--oof-cache DIR keeps the out-of-fold classifier's results between runs; --backend picks the encoder,
    torch by default: the planting and the detection both use its vectors, unless --plant-backend names
    another encoder for the planting, so two backends can be compared on the same planted pairs)

Planting (per dataset, seeded): for every test row, its nearest training row in meaning; a test row
qualifies when that row has the same intent and shares few words with it (word Jaccard <= 0.25 on
lowercased word sets) - the same request in other words. `--pairs` qualifying rows (distinct training
partners) are added to the training set with a wrong label: a uniformly random other intent
(`--relabel random`, as bench/dup_quality.py plants lexical conflicts), the intent whose rows are
closest in meaning to the true one (`closest`: the hard case, often a genuinely ambiguous pair), or
half and half (`mixed`). Truth: the pair (added row, its training partner).

Scoring of reported pairs: planted = the planted pair; adjacent = a planted row with another row of
its true intent (the same conflict, seen through a near twin); spurious = a planted row with a third
intent; original = two rows of the unmodified data (Banking77 and CLINC150 have their own label noise,
so counting these as wrong makes precision_all a lower bound). pair recall = planted pairs reported;
row recall = planted rows reported with a partner of their true intent; precision_planted = (planted +
adjacent) / pairs touching a planted row; precision_all = (planted + adjacent) / all pairs.

Procedure: each family's parameters are chosen on CLINC150 (the setting with the best pair F1 at
precision_all >= 0.8), then applied unchanged to Banking77. Families: `calibrated` (neighbour rank; the
margin over the row's own intent calibrated on the data: median + z MAD of its rows' margins), `fixed`
(rank; one margin number), `calibrated + mutual` (the row also among the other row's nearest), and
`calibrated + classifier` (rank, z and `min_other`: the out-of-fold TF-IDF classifier's probability that
the row has the other row's label must be at least that; 5 folds, seed 0, as a run computes it for the
label checks). "as shipped" is `conflict_pairs` with its own defaults and the classifier, as the
`paraphrase_conflict` check runs it. The lexical check runs with its defaults on the same data; its
findings are groups, so a planted pair counts as found when both rows are in one finding, and its pairs
are the ones it lists.

--clean-base (a second measurement, labelled as such): before planting, every training row in a pair the
meaning-only detector reports at a looser setting than any in the grids (rank 5, z 2.0) is left out,
so the base sets carry (almost) no meaning conflicts of their own and "original" pairs mostly vanish;
the parameters are chosen again on the cleaned CLINC150.

--adjudicated FILE (a third count, for the report dataset only): FILE lists "original" pairs by their
0-based row positions in the report set's train.csv (columns train_row_a, train_row_b, label_a, label_b,
reader_a, reader_b; see bench/adjudication/README.md), each with two blind readers' decisions (conflict /
different / unclear). An original pair counts as right when both readers said conflict, matched by the
unordered pair of train.csv positions (the planted frame's rows are mapped back to train.csv first, which
matters under --clean-base); precision_adjudicated = (planted + adjacent + original pairs both readers call
conflict) / all pairs, printed after precision_all on every report-set row, with the count of original
pairs that were not adjudicated (they count as wrong, as do "unclear" and split decisions). In the
adjudicated setting (the defaults: --pairs 150 --seed 0 --relabel random, full training sets, the
"as shipped" row) every adjudicated pair must be among the reported ones, or the run stops.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import pickle
import re
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from audit_agent.checks import REGISTRY
from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.features.classifier import out_of_fold
from audit_agent.features.embeddings import BACKENDS, TextEmbedder
from audit_agent.features.semantic import CONFLICT_MIN_OTHER, GATED_RANK, GATED_Z, OWN_SEARCH, conflict_pairs
from audit_agent.features.vector_index import knn

conflicting_labels = REGISTRY["conflicting_labels"].run

DATA = Path("/work/shared/data")
DATASETS = {"banking77": "category", "clinc150": "intent"}
ROOT = Path(__file__).resolve().parents[1]
MAX_JACCARD = 0.25
RANKS = (1, 2, 3, 5)
ZS = (2.5, 3.0, 3.5, 4.0, 4.5, 5.0)
MARGINS = tuple(np.round(np.arange(0.0, 0.41, 0.02), 2))
MUTUALS = (3, 10, 20)
CLEAN_RANK, CLEAN_Z = 5, 2.0  # --clean-base: looser than any setting in the grids
MIN_OTHER = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
# the run whose "original" pairs bench/adjudication/banking77_original_pairs.csv adjudicates
ADJUDICATED_SETTING = {"report": "banking77", "pairs": 150, "seed": 0, "relabel": "random", "clean_base": False,
                       "backend": "torch", "plant_backend": None}


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.lower()))


def jaccard(a: str, b: str) -> float:
    x, y = words(a), words(b)
    return len(x & y) / max(len(x | y), 1)


@dataclass
class Planted:
    frame: pd.DataFrame  # id, text, label (train rows first, then planted rows)
    vectors: np.ndarray
    pairs: list[tuple[int, int]]  # (planted position, training partner position)
    true_label: dict[int, str]
    kind: dict[int, str]
    removed: int = 0  # training rows left out of the base set (--clean-base)
    base_rows: tuple[int, ...] = ()  # train.csv position of each base frame row (frame row i -> base_rows[i])

    def train_pair(self, a: int, b: int) -> frozenset[int]:
        """Two base frame rows as the unordered pair of their train.csv positions."""
        return frozenset((self.base_rows[a], self.base_rows[b]))


def plant(name: str, n_pairs: int, embed: TextEmbedder, seed: int, relabel: str, clean: bool = False) -> Planted:
    col = DATASETS[name]
    train = pd.read_csv(DATA / name / "train.csv")
    test = pd.read_csv(DATA / name / "test.csv")
    tt, tl = train.text.astype(str).tolist(), train[col].astype(str).tolist()
    qt, ql = test.text.astype(str).tolist(), test[col].astype(str).tolist()
    te, qe = embed(tt), embed(qt)
    drop: set[int] = set()
    keep = list(range(len(tt)))
    if clean:  # the base set without its own meaning conflicts (see --clean-base)
        found = conflict_pairs(te, tl, rank=CLEAN_RANK, z=CLEAN_Z)
        drop = {x for a, b, _, _ in found for x in (a, b)}
        keep = [i for i in range(len(tt)) if i not in drop]
        tt, tl, te = [tt[i] for i in keep], [tl[i] for i in keep], te[keep]
    idx, _ = knn(te, 1, qe)
    near = idx[:, 0]
    ok = [i for i in range(len(qt)) if tl[near[i]] == ql[i] and jaccard(qt[i], tt[near[i]]) <= MAX_JACCARD
          and qt[i].strip().lower() != tt[near[i]].strip().lower()]
    rng = np.random.default_rng(seed)
    rng.shuffle(ok)
    chosen, used = [], set()
    for i in ok:
        if near[i] not in used:
            chosen.append(i)
            used.add(int(near[i]))
        if len(chosen) == n_pairs:
            break
    labels = sorted(set(tl))
    codes = np.array([labels.index(v) for v in tl])
    centroids = np.stack([te[codes == c].mean(axis=0) for c in range(len(labels))])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    csim = centroids @ centroids.T
    np.fill_diagonal(csim, -np.inf)
    closest = csim.argmax(axis=1)
    rows: list[tuple[str, str]] = []
    pairs: list[tuple[int, int]] = []
    true_label: dict[int, str] = {}
    kind: dict[int, str] = {}
    for j, i in enumerate(chosen):
        c = labels.index(ql[i])
        if relabel == "closest" or (relabel == "mixed" and j % 2 == 0):
            new, k = labels[int(closest[c])], "closest"
        else:
            others = [x for x in labels if x != ql[i]]
            new, k = others[int(rng.integers(len(others)))], "random"
        pos = len(tt) + j
        rows.append((qt[i], new))
        pairs.append((pos, int(near[i])))
        true_label[pos], kind[pos] = ql[i], k
    frame = pd.DataFrame({"id": [str(i) for i in range(len(tt) + len(rows))],
                          "text": tt + [r[0] for r in rows], "label": tl + [r[1] for r in rows]})
    vectors = np.vstack([te, qe[chosen]])
    return Planted(frame, vectors, pairs, true_label, kind, len(drop), tuple(keep))


@dataclass
class Score:
    pairs: int
    planted: int
    adjacent: int
    spurious: int
    original: int
    pair_recall: float
    row_recall: float
    precision_planted: float
    precision_all: float
    originals: frozenset[frozenset[int]] = frozenset()  # the original pairs as train.csv positions

    @property
    def f1(self) -> float:
        p, r = self.precision_all, self.pair_recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score(found: list[tuple[int, int]], groups: list[set[int]] | None, p: Planted) -> Score:
    labels = p.frame["label"].tolist()
    planted_set = {frozenset(x) for x in p.pairs}
    counts = {"planted": 0, "adjacent": 0, "spurious": 0, "original": 0}
    rows_ok: set[int] = set()
    originals: set[frozenset[int]] = set()
    for a, b in {frozenset(x) for x in found if x[0] != x[1]}:
        pair = frozenset((a, b))
        if pair in planted_set:
            counts["planted"] += 1
            rows_ok |= pair & set(p.true_label)
            continue
        touch = [x for x in (a, b) if x in p.true_label]
        if not touch:
            counts["original"] += 1
            if p.base_rows:
                originals.add(p.train_pair(a, b))
            continue
        x = touch[0]
        other = b if x == a else a
        if labels[other] == p.true_label[x]:
            counts["adjacent"] += 1
            rows_ok.add(x)
        else:
            counts["spurious"] += 1
    rows_ok &= {x for x, _ in p.pairs}
    n_pairs = sum(counts.values())
    if groups is not None:
        hit = sum(any(a in g and b in g for g in groups) for a, b in p.pairs)
    else:
        hit = counts["planted"]
    good = counts["planted"] + counts["adjacent"]
    touching = good + counts["spurious"]
    return Score(n_pairs, counts["planted"], counts["adjacent"], counts["spurious"], counts["original"],
                 hit / len(p.pairs), len(rows_ok) / len(p.pairs), good / touching if touching else 0.0,
                 good / n_pairs if n_pairs else 0.0, frozenset(originals))


@dataclass
class Adjudication:
    """Original pairs judged by two blind readers, as unordered pairs of train.csv positions."""

    labels: dict[frozenset[int], frozenset[str]]  # every adjudicated pair -> its two labels
    conflict: frozenset[frozenset[int]]  # the pairs both readers called conflict

    @property
    def pairs(self) -> frozenset[frozenset[int]]:
        return frozenset(self.labels)


def load_adjudication(path: Path) -> Adjudication:
    labels: dict[frozenset[int], frozenset[str]] = {}
    conflict: set[frozenset[int]] = set()
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            key = frozenset((int(row["train_row_a"]), int(row["train_row_b"])))
            assert len(key) == 2 and key not in labels, f"{path}: bad or repeated pair {sorted(key)}"
            labels[key] = frozenset((row["label_a"], row["label_b"]))
            if row["reader_a"] == "conflict" and row["reader_b"] == "conflict":
                conflict.add(key)
    return Adjudication(labels, frozenset(conflict))


def adjudicated(s: Score, adj: Adjudication) -> tuple[int, int, float]:
    """(original pairs both readers call conflict, original pairs not adjudicated, precision_adjudicated):
    precision_adjudicated = (planted + adjacent + original pairs both call conflict) / all pairs; the
    original pairs not adjudicated, "unclear" and split decisions count as wrong."""
    confirmed = len(s.originals & adj.conflict)
    unjudged = len(s.originals - adj.pairs)
    good = s.planted + s.adjacent + confirmed
    return confirmed, unjudged, good / s.pairs if s.pairs else 0.0


def oof_probs(frame: pd.DataFrame, cache: Path | None) -> tuple[np.ndarray, list[str]]:
    """The out-of-fold classifier's probabilities on the planted frame (5 folds, seed 0, as a run
    computes them for the label checks), kept in `cache` by the frame's content when given."""
    key = hashlib.md5(pd.util.hash_pandas_object(frame[["text", "label"]], index=False).to_numpy().tobytes()).hexdigest()
    path = cache / f"oof-{key}.pkl" if cache is not None else None
    if path is not None and path.exists():
        oof = pickle.loads(path.read_bytes())  # our own cache file, written below
    else:
        oof = out_of_fold(Dataset(path=Path("planted.csv"), frame=frame), folds=5, seed=0)
        oof.X = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pickle.dumps(oof))
    return oof.probs, oof.classes


Params = dict[str, Any]


def ours(p: Planted, params: Params, neighbours: tuple[np.ndarray, np.ndarray],
         probs: tuple[np.ndarray, list[str]] | None) -> tuple[Score, float]:
    extra: Params = {"probs": probs[0], "classes": probs[1]} if probs is not None and params.get("classifier") else {}
    kwargs = {k: v for k, v in params.items() if k != "classifier"}
    t = time.perf_counter()
    found = conflict_pairs(p.vectors, p.frame["label"].tolist(), neighbours=neighbours, **kwargs, **extra)
    secs = time.perf_counter() - t
    return score([(a, b) for a, b, _, _ in found], None, p), secs


def lexical(p: Planted) -> tuple[Score, float]:
    ctx = AuditContext(train=Dataset(path=Path("planted.csv"), frame=p.frame), config=AuditConfig())
    t = time.perf_counter()
    findings = [f for f in conflicting_labels(ctx) if not getattr(f.evidence, "summary", None)]
    secs = time.perf_counter() - t
    groups = [{int(r) for r in f.rows} for f in findings]
    pairs = [(int(x["a"]["id"]), int(x["b"]["id"])) for f in findings for x in f.evidence["pairs"]]
    return score(pairs, groups, p), secs


def describe(params: Params) -> str:
    if params.get("rank") is None:
        return f"rank={GATED_RANK}, z={GATED_Z}, classifier p(b's label) >= {CONFLICT_MIN_OTHER}"
    knobs = [f"rank={params['rank']}"]
    if params.get("margin") is not None:
        knobs.append(f"fixed margin {params['margin']:.2f}")
    else:
        knobs.append(f"z={params['z']}: margin >= median + {params['z']} MAD")
    if params.get("mutual"):
        knobs.append(f"mutual={params['mutual']}")
    if params.get("classifier"):
        knobs.append(f"classifier p(b's label) >= {params['min_other']}")
    return ", ".join(knobs)


def families() -> dict[str, list[Params]]:
    """Each family's grid; one setting per family is chosen on the tuning set."""
    out: dict[str, list[Params]] = {"calibrated": [], "fixed": [], "calibrated + mutual": [],
                                    "calibrated + classifier": []}
    for rank in RANKS:
        out["calibrated"] += [{"rank": rank, "margin": None, "z": z} for z in ZS]
        out["fixed"] += [{"rank": rank, "margin": float(m), "z": 0.0} for m in MARGINS]
        out["calibrated + mutual"] += [{"rank": rank, "margin": None, "z": z, "mutual": mu}
                                       for z in ZS for mu in MUTUALS]
        out["calibrated + classifier"] += [{"rank": rank, "margin": None, "z": z, "classifier": True, "min_other": t}
                                           for z in ZS for t in MIN_OTHER]
    return out


def _line(method: str, name: str, s: Score, secs: float, adj: Adjudication | None = None,
          adj_cols: bool = False) -> str:
    """One table row; with `adj_cols`, three more columns after precision (all): the original pairs both
    readers call conflict, those not adjudicated, precision (adjudicated) (blank without `adj`)."""
    extra = ""
    if adj is not None:
        confirmed, unjudged, prec = adjudicated(s, adj)
        extra = f" {confirmed} | {unjudged} | **{prec:.3f}** |"
    elif adj_cols:
        extra = " | | |"
    return (f"| {name} | {method} | {s.pairs} | {s.planted} | {s.adjacent} | {s.spurious} | {s.original} | "
            f"**{s.pair_recall:.3f}** | {s.row_recall:.3f} | {s.precision_planted:.3f} | **{s.precision_all:.3f}** |"
            f"{extra} {secs:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--relabel", choices=("random", "closest", "mixed"), default="random")
    ap.add_argument("--tune", default="clinc150")
    ap.add_argument("--report", default="banking77")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "audit-agent" / "embeddings",
                    help="the embedding cache (a run's default)")
    ap.add_argument("--oof-cache", type=Path, default=None, help="folder to keep out-of-fold results in (reruns)")
    ap.add_argument("--backend", choices=BACKENDS, default="torch",
                    help="the encoder behind the vectors (torch and onnx give the same ones and share the cache)")
    ap.add_argument("--plant-backend", choices=BACKENDS, default=None,
                    help="plant with this encoder's vectors and detect with --backend's (default: --backend for both), "
                         "so two backends can be compared on the same planted pairs")
    ap.add_argument("--clean-base", action="store_true",
                    help="plant into training sets without their own meaning conflicts (a second, labelled count)")
    ap.add_argument("--adjudicated", type=Path, default=None, metavar="FILE",
                    help="original pairs of the report set judged by two blind readers: adds precision_adjudicated")
    args = ap.parse_args()
    adj = load_adjudication(args.adjudicated) if args.adjudicated is not None else None
    adj_setting = adj is not None and all(getattr(args, k) == v for k, v in ADJUDICATED_SETTING.items())
    print(f"nproc {os.cpu_count()}, load at start {os.getloadavg()}, backend {args.backend}, "
          f"planted with {args.plant_backend or args.backend}", flush=True)
    embed = TextEmbedder(args.cache, backend=args.backend)
    planter = TextEmbedder(args.cache, backend=args.plant_backend) if args.plant_backend else embed

    def planted(name: str) -> Planted:
        p = plant(name, args.pairs, planter, args.seed, args.relabel, args.clean_base)
        return p if planter is embed else replace(p, vectors=embed(p.frame["text"].astype(str).tolist()))

    tune = planted(args.tune)
    tune_probs = oof_probs(tune.frame, args.oof_cache)
    nb = knn(tune.vectors, max(*RANKS, OWN_SEARCH, *MUTUALS))
    grids = {fam: [(params, ours(tune, params, nb, tune_probs)[0]) for params in grid]
             for fam, grid in families().items()}
    chosen = {}
    for fam, grid in grids.items():
        eligible = [g for g in grid if g[1].precision_all >= 0.8] or grid
        chosen[fam] = max(eligible, key=lambda g: (g[1].f1, g[1].pair_recall))[0]
    print(f"\nchosen on {args.tune}: " + "; ".join(f"{fam}: {describe(params)}" for fam, params in chosen.items()) + "\n")
    adj_head, adj_rule = ("original, both readers: conflict | original, not adjudicated | precision (adjudicated) | ",
                          "---|---|---|") if adj is not None else ("", "")
    print("| dataset | method | pairs | planted | adjacent | spurious | original | pair recall | row recall | "
          f"precision (planted rows) | precision (all) | {adj_head}s |\n|---|---|---|---|---|---|---|---|---|---|---|{adj_rule}---|")
    for p, name in ((tune, f"{args.tune} (tuning)"), (None, args.report)):
        if p is None:
            p = planted(args.report)
        probs = tune_probs if p is tune else oof_probs(p.frame, args.oof_cache)
        neighbours = knn(p.vectors, max(*RANKS, OWN_SEARCH, *MUTUALS))
        row_adj = adj if p is not tune else None
        if row_adj is not None:  # the file's labels must be the report set's labels at those train.csv rows
            frame_row = {t: i for i, t in enumerate(p.base_rows)}
            labels = p.frame["label"].tolist()
            for key, want in row_adj.labels.items():
                if all(t in frame_row for t in key):
                    assert frozenset(labels[frame_row[t]] for t in key) == want, f"labels differ at rows {sorted(key)}"
        blank = " | | |" if adj is not None else ""
        if p.removed:
            print(f"| {name} | (base set: {p.removed} training rows in meaning conflicts left out first) | | | | | | | | | | |{blank}")
        shipped = {"rank": None, "z": None, "classifier": True}  # conflict_pairs' own defaults, as the check runs it
        for fam, params in [*chosen.items(), ("as shipped (the check's defaults)", shipped)]:
            s, secs = ours(p, params, neighbours, probs)
            if row_adj is not None and adj_setting and params is shipped:
                missing = row_adj.pairs - s.originals
                assert not missing, f"{len(missing)} adjudicated pairs not reported in the adjudicated setting"
            print(_line(f"meaning, {fam}: {describe(params)}", name, s, secs, row_adj, adj is not None))
            for kind in (("closest", "random") if args.relabel == "mixed" else ()):
                sub = Planted(p.frame, p.vectors, [x for x in p.pairs if p.kind[x[0]] == kind], p.true_label, p.kind,
                              p.removed, p.base_rows)
                ks = ours(sub, params, neighbours, probs)[0]
                print(f"| {name} | ... {fam}, relabelled to the {kind} intent only | | | | | | {ks.pair_recall:.3f} | "
                      f"{ks.row_recall:.3f} | | |{blank} |")
        ls, lsecs = lexical(p)
        print(_line("lexical: conflicting_labels (defaults)", name, ls, lsecs, row_adj, adj is not None))
    base = "training sets without their own meaning conflicts" if args.clean_base else "the full training sets"
    print(f"\n{len(tune.pairs)} planted pairs per dataset into {base}, relabelled: {args.relabel}; "
          f"load at end {os.getloadavg()}")
    if adj is not None:
        print(f"\nAdjudicated ({args.report} only): {len(adj.pairs)} original pairs in {args.adjudicated}, "
              f"{len(adj.conflict)} called conflict by both readers; precision (adjudicated) = (planted + adjacent + "
              "original pairs both readers call conflict) / pairs. Original pairs not adjudicated, 'unclear' and "
              "split decisions count as wrong." + ("" if adj_setting else " (Not the adjudicated setting: "
                                                   "pairs reported only here are not adjudicated.)"))
    print(f"\nTuning grid ({args.tune}), near each family's choice: pair recall / precision_all")
    for fam, grid in grids.items():
        pick = chosen[fam]
        for params, sc in grid:
            if params["rank"] == pick["rank"] and all(params.get(k) == pick.get(k) for k in ("mutual", "min_other")):
                print(f"  {fam}: {describe(params)}: recall {sc.pair_recall:.3f} precision_all {sc.precision_all:.3f} "
                      f"pairs {sc.pairs}")


if __name__ == "__main__":
    main()
