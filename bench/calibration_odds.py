"""What the calibration decides for a judge right with probability p, computed exactly from the binomial
distribution (no simulation): the balanced accuracy and its MOVER interval (jobs/judge_calibration.py)
after round 1, a second batch of canaries when that leaves the judge on a boundary, and how often the
final estimate lands within 0.1 of p.

    python bench/calibration_odds.py                          # the bundled example's counts (defaults)
    python bench/calibration_odds.py --confirmed 36 --confirmed-final 40

Round 1: `--swapped` swapped canaries and `--confirmed` confirmed cases (confident rows of the random
sample); a second batch adds `--swapped` more swapped canaries and `--second-confirmed` confirmed
cases (its random rows); the final estimate has `--confirmed-final` confirmed cases (plus the second
batch's). Thresholds: the defaults of `judge.min_canary_low` and `judge.strong_canary_low`.
"""

from __future__ import annotations

import argparse
import sys
from functools import cache

from scipy.stats import binom

from audit_agent.config import JudgeConfig
from audit_agent.jobs.judge_calibration import BASELINE, mover_sum


@cache
def _interval(ks: int, s: int, kc: int, c: int) -> tuple[float, float, float]:
    return mover_sum([(ks, s), (kc, c)], [0.5, 0.5])


def odds(p: float, s: int, c1: int, c2: int, cf: int, min_low: float, strong: float) -> dict[str, float]:
    """Probabilities of: a second batch, informative, one signal suffices (after it), the final
    estimate within 0.1 of p."""
    out = dict.fromkeys(("second", "informative", "strong", "within"), 0.0)
    ps, pc = binom.pmf(range(s + 1), s, p), binom.pmf(range(c1 + 1), c1, p)
    ps2, pc2 = binom.pmf(range(s + 1), s, p), binom.pmf(range(c2 + 1), c2, p)
    for ks in range(s + 1):
        for kc in range(c1 + 1):
            w = ps[ks] * pc[kc]
            acc, low, _ = _interval(ks, s, kc, c1)
            boundary = acc > BASELINE and low < strong
            final = [(1.0, ks, s, kc, c1)]
            if boundary:
                out["second"] += w
                final = [(ps2[a] * pc2[b], ks + a, 2 * s, kc + b, c1 + c2) for a in range(s + 1) for b in range(c2 + 1)]
            for v, k1, n1, k2, n2 in final:
                acc2, low2, _ = _interval(k1, n1, k2, n2)
                informative = acc2 > BASELINE and low2 >= min_low
                out["informative"] += w * v * informative
                out["strong"] += w * v * (informative and low2 >= strong)
                more = cf - c1  # confirmed cases the later rounds add: their mean is p, spread ignored
                out["within"] += w * v * _within(k1, n1, k2, n2, more, p)
    return out


def _within(k1: int, n1: int, k2: int, n2: int, more: int, p: float) -> float:
    """P(|final balanced accuracy - p| <= 0.1) given the cases so far and `more` confirmed ones to come."""
    pm = binom.pmf(range(more + 1), more, p)
    return float(sum(pm[j] for j in range(more + 1)
                     if abs(0.5 * (k1 / n1 + (k2 + j) / (n2 + more)) - p) <= 0.1 + 1e-9))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--swapped", type=int, default=18)
    ap.add_argument("--confirmed", type=int, default=23)
    ap.add_argument("--second-confirmed", type=int, default=12)
    ap.add_argument("--confirmed-final", type=int, default=56)
    ap.add_argument("--accuracies", nargs="+", type=float, default=[0.5, 0.6, 0.7, 0.8, 0.9])
    args = ap.parse_args(argv)
    cfg = JudgeConfig()
    print("| judge right | second batch needed | called informative | one signal suffices | estimate within 0.1 |")
    print("|---|---|---|---|---|")
    for p in args.accuracies:
        o = odds(p, args.swapped, args.confirmed, args.second_confirmed, args.confirmed_final, cfg.min_canary_low,
                 cfg.strong_canary_low)
        print(f"| {p:.0%} | {o['second']:.2f} | {o['informative']:.2f} | {o['strong']:.2f} | {o['within']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
