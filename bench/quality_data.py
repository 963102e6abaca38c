"""The data of the label-quality benchmarks (bench/quality.py and its --sweep, bench/quality_sweep.py):
the public datasets and out-of-fold fits on them, optionally kept on disk between runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from audit_agent.dataset import Dataset
from audit_agent.features.classifier import OOFResult, out_of_fold

DATA = Path("/work/shared/data")
DATASETS = {"banking77": ("banking77/train.csv", "category"), "clinc150": ("clinc150/train.csv", "intent")}


def load_data(name: str) -> pd.DataFrame:
    """Dataset `name` as a frame with the columns id, text and label."""
    rel, col = DATASETS[name]
    df = pd.read_csv(DATA / rel)
    return pd.DataFrame({"id": [str(i) for i in range(len(df))], "text": df["text"].astype(str),
                         "label": df[col].astype(str)})


def fit_oof(frame: pd.DataFrame, seed: int, cache: Path | None = None) -> OOFResult:
    """The out-of-fold fit (5 folds) of `frame`; with `cache` (a folder), reused across runs, keyed by
    the frame's content and the seed."""
    if cache is None:
        return out_of_fold(Dataset(path=Path("bench.csv"), frame=frame), folds=5, seed=seed)
    import hashlib
    import pickle

    key = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()[:20]
    path = cache / f"oof-{key}-{seed}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())  # our own cache file, written below
    oof = out_of_fold(Dataset(path=Path("bench.csv"), frame=frame), folds=5, seed=seed)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(oof))
    return oof
