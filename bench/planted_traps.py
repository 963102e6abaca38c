"""Planted shortcut traps on real data: how well `template_frame`, `label_leak`, `repeated_opening` and
`contamination` find problems planted (seeded) into Banking77 and CLINC150.

1. Template frames: 30 rows of each of 3 labels are replaced by a frame where only a name (20 first
   names, 4 of them outside the slot masker's name list), a 4-digit number and a date change.
   Recall = planted rows inside `template_frame` findings; precision = share of flagged rows that are
   planted (the rest are frames the real data already has; listed for inspection).
2. Label-leaking openings, two variants: (a) one polite opening prepended to 40% of the rows of 2
   labels; (b) a different opening per label (40% of each). Recall = planted phrase found (label_leak:
   kind "style", top label a planted one; repeated_opening: the phrase's opening) and planted rows
   covered; precision = share of style leaks / medium+ repeated openings that are planted.
3. Eval contamination: 100 random train rows are inserted into the test split at random positions,
   50 verbatim and 50 lightly edited (one typo, changed casing or changed punctuation). Test rows that
   `contamination` already flags on the unmodified test set are "pre-existing"; precision is reported
   counting them as wrong (all) and excluding them.

Near-duplicates with conflicting labels are benchmarked by bench/dup_quality.py.

    python bench/planted_traps.py            # both datasets; prints markdown tables (see docs/planted-traps.md)
Data is read from /work/shared/data at run time; nothing is copied into the repository.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from audit_agent.checks import REGISTRY
from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.findings import Finding, Severity
from audit_agent.io.loader import load_dataset

DATA = Path("/work/shared/data")
DATASETS = {"banking77": "category", "clinc150": "intent"}
SEED = 7

_NAME_LINE = ("James Mary Robert Linda Michael Sarah David Emma Daniel Laura Kevin Olivia Peter Anna Carlos Priya "
              "Marta Tobias Ingrid Kofi")  # the last 4 are not in the slot masker's name list
NAMES = _NAME_LINE.split(" ")
FRAMES = (
    "Hello, my name is {name} and my card ending {num} {verb} on {date}, what should I do next?",
    "Hi there, this is {name} writing about account number {num}; since {date} it {verb} and I need help.",
    "Good day, {name} here. Reference {num}: on {date} my transfer {verb}, could you look into it?",
)
VERBS = ("stopped working", "was declined", "got blocked", "failed twice", "was charged twice")
DATES = ("March 3", "June 14", "July 22", "September 9", "October 30", "December 1", "January 17", "April 5")
SHARED_OPENING = "Good morning, I hope this message finds you well."
PER_LABEL_OPENINGS = ("Good morning, I hope this message finds you well.",
                      "Dear support team, I would be grateful if you could kindly help me.")


@dataclass
class Row:
    """One line of a result table."""

    problem: str
    planted: str
    found: str
    recall: str
    precision: str
    seconds: float


def words(text: str) -> str:
    """Lower-case words joined by single spaces, for phrase matching."""
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def load_split(name: str, split: str) -> pd.DataFrame:
    raw = pd.read_csv(DATA / name / f"{split}.csv")
    return pd.DataFrame({"id": [f"{split}{i}" for i in range(len(raw))], "text": raw["text"].astype(str),
                         "label": raw[DATASETS[name]].astype(str)})


def as_dataset(frame: pd.DataFrame, tmp: Path, stem: str, role: str = "train") -> Dataset:
    path = tmp / f"{stem}.csv"
    frame.to_csv(path, index=False)
    return load_dataset(path, role=role, label_col="label", id_col="id")  # type: ignore[arg-type]


def run_check(name: str, train: Dataset, eval_: Dataset | None = None) -> tuple[list[Finding], float]:
    """One check on a fresh context (shared features included in the time)."""
    ctx = AuditContext(train=train, config=AuditConfig(), eval=eval_)
    start = time.perf_counter()
    found = REGISTRY[name].run(ctx)
    return found, time.perf_counter() - start


def fmt(num: int, den: int) -> str:
    return f"{num / den:.3f} ({num}/{den})" if den else "n/a (0/0)"


def plant_frames(train: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, set[str], list[str]]:
    out = train.copy()
    counts = out["label"].value_counts()
    labels = rng.choice(counts.index[counts >= 60].to_numpy(), size=3, replace=False).tolist()
    planted: set[str] = set()
    for frame, label in zip(FRAMES, labels, strict=True):
        pos = rng.choice(np.flatnonzero(out["label"].to_numpy() == label), size=30, replace=False)
        for p in pos:
            out.iat[p, 1] = frame.format(name=rng.choice(NAMES), num=int(rng.integers(1000, 10000)),
                                         verb=rng.choice(VERBS), date=rng.choice(DATES))
            planted.add(str(out.iat[p, 0]))
    return out, planted, labels


def bench_frames(train: pd.DataFrame, rng: np.random.Generator, tmp: Path) -> tuple[Row, list[str]]:
    planted_frame, planted, labels = plant_frames(train, rng)
    found, secs = run_check("template_frame", as_dataset(planted_frame, tmp, "frames"))
    flagged = {str(r) for f in found for r in f.rows}
    rest = [f"{len(f.rows)} rows: {f.evidence['frame'][:90]}" for f in found
            if not planted & {str(r) for r in f.rows}]
    hit = len(planted & flagged)
    return Row("template frames", f"{len(planted)} rows, 3 frames ({', '.join(labels)})",
               f"{len(found)} findings, {len(flagged)} rows", fmt(hit, len(planted)),
               fmt(len(flagged & planted), len(flagged)), secs), rest


def plant_openings(train: pd.DataFrame, rng: np.random.Generator, openings: tuple[str, ...],
                   labels: list[str]) -> tuple[pd.DataFrame, dict[str, set[str]]]:
    """Prepend openings[i % len] to 40% of the rows of labels[i]; planted rows per opening."""
    out = train.copy()
    planted: dict[str, set[str]] = {o: set() for o in openings}
    for i, label in enumerate(labels):
        opening = openings[i % len(openings)]
        idx = np.flatnonzero(out["label"].to_numpy() == label)
        pos = rng.choice(idx, size=round(0.4 * len(idx)), replace=False)
        out.iloc[pos, 1] = opening + " " + out.iloc[pos, 1]
        planted[opening] |= set(out.iloc[pos, 0])
    return out, planted


def _matches(phrase: str, openings: dict[str, set[str]]) -> str | None:
    """The planted opening a found phrase belongs to (a sub-phrase of it, or it extended)."""
    p = f" {words(phrase)} "
    for opening in openings:
        o = f" {words(opening)} "
        if len(p.split()) >= 2 and (p in o or o in p):
            return opening
    return None


def bench_openings(train: pd.DataFrame, rng: np.random.Generator, tmp: Path, openings: tuple[str, ...],
                   variant: str) -> tuple[list[Row], list[str]]:
    counts = train["label"].value_counts()
    labels = rng.choice(counts.index[counts >= 60].to_numpy(), size=2, replace=False).tolist()
    frame, planted = plant_openings(train, rng, openings, labels)
    label_of = {o: {lab for i, lab in enumerate(labels) if openings[i % len(openings)] == o} for o in openings}
    all_planted = set().union(*planted.values())
    ds = as_dataset(frame, tmp, f"open_{variant}")
    rows, rest = [], []

    leaks, secs = run_check("label_leak", ds)
    style = [f for f in leaks if not getattr(f.evidence, "summary", None)
             and (f.evidence["kind"] == "style" or f.severity == Severity.HIGH)]
    good = [f for f in style if (o := _matches(f.evidence["phrase"], planted))
            and f.evidence["kind"] == "style" and f.evidence["top_label"] in label_of[o]]
    phrases_found = {_matches(f.evidence["phrase"], planted) for f in good}
    covered = all_planted & {str(r) for f in good for r in f.rows}
    ranked = [f for f in leaks if not getattr(f.evidence, "summary", None)]
    any_kind = [f"#{i + 1} {f.evidence['kind']}/{f.severity.value}" for i, f in enumerate(ranked)
                if _matches(f.evidence["phrase"], planted)]
    rest.append(f"label_leak, planted phrase at any kind/severity: {', '.join(any_kind) or 'not listed'}")
    rest += [f"label_leak: {f.evidence['phrase']!r} -> {f.evidence['top_label']} ({f.evidence['support']} rows, "
             f"{f.severity.value})" for f in style if f not in good][:8]
    rows.append(Row(f"leaking opening ({variant}): label_leak",
                    f"{len(planted)} phrase(s), {len(all_planted)} rows in {', '.join(labels)}",
                    f"{len(style)} style/high leaks",
                    f"phrases {len(phrases_found)}/{len(planted)}; rows {fmt(len(covered), len(all_planted))}",
                    fmt(len(good), len(style)), secs))

    openings_found, secs = run_check("repeated_opening", ds)
    flagged = [f for f in openings_found if f.severity.rank >= Severity.MEDIUM.rank]
    good = [f for f in flagged if _matches(f.evidence["phrase"], planted)]
    phrases_found = {_matches(f.evidence["phrase"], planted) for f in good}
    covered = all_planted & {str(r) for f in good for r in f.rows}
    rest += [f"repeated_opening: {f.evidence['phrase']!r} ({f.evidence['count']} rows, {f.severity.value})"
             for f in flagged if f not in good][:8]
    rows.append(Row(f"leaking opening ({variant}): repeated_opening", "same", f"{len(flagged)} medium+ findings",
                    f"phrases {len(phrases_found)}/{len(planted)}; rows {fmt(len(covered), len(all_planted))}",
                    fmt(len(good), len(flagged)), secs))
    return rows, rest


def light_edit(text: str, rng: np.random.Generator) -> str:
    """One typo (two adjacent letters swapped), changed casing, or changed final punctuation."""
    kind = int(rng.integers(3))
    if kind == 0:
        spots = [m.start() for m in re.finditer(r"[A-Za-z]{4,}", text)]
        if spots:
            i = int(rng.choice(spots)) + 1
            return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    if kind == 1:
        return text.upper() if text != text.upper() else text.lower()
    stripped = text.rstrip("?.! ")
    return stripped + ("!" if text.endswith("?") else "?")


def plant_contamination(train: pd.DataFrame, test: pd.DataFrame,
                        rng: np.random.Generator) -> tuple[pd.DataFrame, set[str]]:
    picks = train.iloc[rng.choice(len(train), size=100, replace=False)]
    texts = [t if j < 50 else light_edit(t, rng) for j, t in enumerate(picks["text"])]
    copies = pd.DataFrame({"id": [f"planted{j}" for j in range(100)], "text": texts,
                           "label": picks["label"].to_numpy()})
    mixed = pd.concat([test, copies], ignore_index=True)
    return mixed.iloc[rng.permutation(len(mixed))].reset_index(drop=True), set(copies["id"])


def bench_contamination(train: pd.DataFrame, test: pd.DataFrame, rng: np.random.Generator,
                        tmp: Path) -> tuple[Row, list[str]]:
    train_ds = as_dataset(train, tmp, "contam_train")
    before, _ = run_check("contamination", train_ds, as_dataset(test, tmp, "test_clean", "eval"))
    pre = {str(r) for f in before for r in f.rows}
    pre_info = [f.message for f in before]
    mixed, planted = plant_contamination(train, test, rng)
    found, secs = run_check("contamination", train_ds, as_dataset(mixed, tmp, "test_planted", "eval"))
    flagged = {str(r) for f in found for r in f.rows}
    matched = sum(int(f.evidence["matched"]) for f in found)
    hit = len(planted & flagged)
    hit_exact = len({f"planted{j}" for j in range(50)} & flagged)
    notes = [f"unmodified test: {m}" for m in pre_info] + [f"planted test: {f.message}" for f in found]
    if matched > len(flagged):
        notes.append(f"row list truncated: {matched} matched, {len(flagged)} ids listed")
    other = flagged - planted
    return Row("eval contamination", f"100 rows (50 exact, 50 edited) among {len(test)} test rows",
               f"{len(flagged)} rows ({len(pre)} pre-existing); exact {hit_exact}/50, edited {hit - hit_exact}/50",
               fmt(hit, len(planted)),
               f"all {fmt(hit, len(flagged))}; excl. pre-existing {fmt(hit, hit + len(other - pre))}",
               secs), notes


def table(rows: list[Row]) -> str:
    lines = ["| problem | planted | found | recall | precision | seconds |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.problem} | {r.planted} | {r.found} | {r.recall} | {r.precision} | {r.seconds:.2f} |"
              for r in rows]
    return "\n".join(lines)


def run_dataset(name: str, tmp: Path, log: Callable[[str], None]) -> str:
    rng = np.random.default_rng(SEED)
    train, test = load_split(name, "train"), load_split(name, "test")
    rows: list[Row] = []
    notes: list[str] = []
    row, rest = bench_frames(train, rng, tmp)
    rows.append(row)
    notes += [f"template_frame, not planted: {r}" for r in rest[:10]]
    for openings, variant in (((SHARED_OPENING,), "one phrase, 2 labels"), (PER_LABEL_OPENINGS, "a phrase per label")):
        more, rest = bench_openings(train, rng, tmp, openings, variant)
        rows += more
        notes += [f"{variant}, not planted: {r}" for r in rest]
    row, rest = bench_contamination(train, test, rng, tmp)
    rows.append(row)
    notes += rest
    out = f"### {name} ({len(train)} train, {len(test)} test rows)\n\n{table(rows)}\n\nFlagged but not planted:\n\n"
    out += "\n".join(f"- {n}" for n in notes) + "\n"
    log(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            run_dataset(name, Path(tmp), print)


if __name__ == "__main__":
    main()
