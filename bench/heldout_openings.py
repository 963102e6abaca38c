"""Held-out check of `label_leak`'s style rule: plant polite openings that were NOT looked at when the
rule was written (bench/planted_traps.py's two phrases were), one phrase per label, and count how many
`label_leak` reports as style leaks of the right label and how many `repeated_opening` finds.

    python bench/heldout_openings.py            # both datasets, 3 phrase pairs, seeds 0-2

The phrases below were written for this benchmark in one go and not changed after seeing results.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from planted_traps import DATASETS, bench_openings, load_split

HELD_OUT_PAIRS = (
    ("Hello there, I trust you are having a pleasant day.",
     "Good afternoon, I am reaching out in the hope that you can assist me."),
    ("Hi team, thank you so much in advance for taking the time to read this.",
     "Greetings, I would sincerely appreciate any guidance you are able to offer."),
    ("Dear colleagues, I hope all is well on your end.",
     "Hey, sorry to bother you, but I could really use some help here."),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    start = time.perf_counter()
    print("| dataset | seed | phrases | check | found | recall (phrases; rows) | precision |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in DATASETS:
            train = load_split(name, "train")
            for seed in args.seeds:
                for k, pair in enumerate(HELD_OUT_PAIRS):
                    rows, _ = bench_openings(train, np.random.default_rng(seed), Path(tmp), pair, f"{name}{seed}{k}")
                    for row in rows:
                        check = row.problem.split(": ")[-1]
                        print(f"| {name} | {seed} | pair {k + 1} | {check} | {row.found} | {row.recall} | "
                              f"{row.precision} |", flush=True)
    print(f"\n{time.perf_counter() - start:.0f} s wall")


if __name__ == "__main__":
    main()
