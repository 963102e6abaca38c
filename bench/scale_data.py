"""Build large benchmark training sets from the real public datasets in ../shared/data.

Rows of Banking77 and CLINC150 (read at run time, never copied into the repository) are replicated
with seeded perturbations (typos, dropped/swapped words, case and punctuation changes, filler
openings) until the requested size, so the data has realistic near duplicates but few exact ones.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pandas as pd


def _shared_data() -> Path:
    """The shared public datasets: $AUDIT_SHARED_DATA, else ../shared/data beside the repository,
    else /work/shared/data (for a checkout that is not beside shared/)."""
    env = os.environ.get("AUDIT_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2] / "shared" / "data", Path("/work/shared/data")]
    return next((c for c in candidates if (c / "banking77").is_dir()), candidates[-1])


SHARED = _shared_data()
OPENINGS = np.array(["", "", "", "hi, ", "hello, ", "hey ", "please help: ", "quick question: ", "urgent: "])
ENDINGS = np.array(["", "", "", " thanks", " thank you!", " pls", " asap", "?", "!!"])


def base_rows() -> pd.DataFrame:
    """Banking77 train + CLINC150 train as one (text, label) frame."""
    bank = pd.read_csv(SHARED / "banking77" / "train.csv").rename(columns={"category": "label"})
    clinc = pd.read_csv(SHARED / "clinc150" / "train.csv").rename(columns={"intent": "label"})
    return pd.concat([bank[["text", "label"]], clinc[["text", "label"]]], ignore_index=True)


def _typo(words: list[str], rng: np.random.Generator) -> list[str]:
    i = int(rng.integers(len(words)))
    w = words[i]
    if len(w) > 3:
        j = int(rng.integers(1, len(w) - 1))
        words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return words


def perturb(text: str, rng: np.random.Generator) -> str:
    words = text.split()
    if len(words) > 3 and rng.random() < 0.5:
        del words[int(rng.integers(len(words)))]
    if len(words) > 2 and rng.random() < 0.3:
        i = int(rng.integers(len(words) - 1))
        words[i], words[i + 1] = words[i + 1], words[i]
    if words and rng.random() < 0.6:
        words = _typo(words, rng)
    out = " ".join(words)
    if rng.random() < 0.3:
        out = out.lower()
    return str(rng.choice(OPENINGS)) + out + str(rng.choice(ENDINGS))


def scaled(n_rows: int, seed: int = 0) -> pd.DataFrame:
    base = base_rows()
    rng = np.random.default_rng(seed)
    idx = np.resize(np.arange(len(base)), n_rows)
    rng.shuffle(idx)
    frame = base.iloc[idx].reset_index(drop=True)
    originals = np.zeros(n_rows, dtype=bool)
    originals[: min(len(base), n_rows)] = True
    texts = frame["text"].tolist()
    frame["text"] = [t if keep else perturb(t, rng) for t, keep in zip(texts, originals, strict=True)]
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rows", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shared", type=Path, default=None, help="folder holding banking77/ and clinc150/")
    args = parser.parse_args()
    if args.shared is not None:
        global SHARED
        SHARED = args.shared
    args.out.parent.mkdir(parents=True, exist_ok=True)
    scaled(args.rows, args.seed).to_csv(args.out, index=False)
    print(f"wrote {args.rows:,} rows to {args.out}")


if __name__ == "__main__":
    main()
