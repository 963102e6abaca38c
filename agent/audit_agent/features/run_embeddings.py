"""The run's embedding layer: one `TextEmbedder` (model loaded on first use, vectors cached on disk)
and the vectors of each split, computed once and shared by every check that asks.

Above `embeddings.max_rows` rows a split is embedded through a seeded stratified sample (every label
keeps its share and at least one row); `SplitEmbeddings.note` says so for the report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from audit_agent.errors import ConfigError
from audit_agent.features.embeddings import TextEmbedder, resolve_backend, unavailable_reason

if TYPE_CHECKING:
    from audit_agent.config import AuditConfig
    from audit_agent.dataset import AuditData, Dataset


@dataclass
class SplitEmbeddings:
    """L2-normalised float32 vectors of the rows at `positions` of a split's frame, with their ids
    and labels (None for unlabelled rows) in the same order."""

    vectors: np.ndarray = field(repr=False)
    positions: np.ndarray = field(repr=False)
    ids: list[Any]
    labels: list[str | None]
    total_rows: int
    note: str | None = None

    @property
    def sampled(self) -> bool:
        return len(self.positions) < self.total_rows


def user_cache_dir() -> Path:
    """The default home of the unpacked model and the vector cache, shared by every run of this user:
    $XDG_CACHE_HOME/audit-agent/embeddings (default ~/.cache/...)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "audit-agent" / "embeddings"


def stratified_sample(labels: list[str | None], cap: int, seed: int) -> np.ndarray:
    """Sorted positions of at most about `cap` rows, each label keeping its share and >= 1 row."""
    n = len(labels)
    if n <= cap:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    keys = np.array(["" if v is None else v for v in labels], dtype=object)
    keep = rng.random(n) < cap / n
    _, first = np.unique(keys, return_index=True)
    keep[first] = True
    return np.flatnonzero(keep)


def _labels(ds: Dataset) -> list[str | None]:
    if "label" not in ds.frame.columns:
        return [None] * len(ds)
    return [None if v is None or v != v else str(v) for v in ds.frame["label"].tolist()]


def skip_reason(config: AuditConfig) -> str | None:
    """Why the run goes without embeddings (None when it uses them); `enabled: on` without the extra,
    or a named `embeddings.backend` whose runtime is missing, is a ConfigError."""
    setting = config.embeddings.enabled
    if setting == "off":
        return "embeddings are off (embeddings.enabled: off)"
    reason = unavailable_reason()
    if reason and setting == "on":
        raise ConfigError(f"embeddings.enabled is on but {reason}")
    if reason is None:
        resolve_backend(config.embeddings.backend)  # a named backend that is not installed: ConfigError
    return reason


class RunEmbeddings:
    """Embeddings of the context's splits ("train", "eval", "real"), each computed on first use."""

    def __init__(self, ctx: AuditData) -> None:
        cfg = ctx.config.embeddings
        self.ctx = ctx
        self.max_rows = cfg.max_rows
        root = Path(cfg.cache_dir) if cfg.cache_dir is not None else user_cache_dir()
        self.embedder = TextEmbedder(root, backend=cfg.backend, batch_size=cfg.batch_size, threads=cfg.threads)
        self._splits: dict[str, SplitEmbeddings | None] = {}

    def split(self, name: str = "train") -> SplitEmbeddings | None:
        """The vectors of split `name`; None when the run has no such split."""
        if name not in self._splits:
            ds = {"train": self.ctx.train, "eval": self.ctx.eval, "real": self.ctx.real}[name]
            self._splits[name] = None if ds is None else self._embed(ds, name)
        return self._splits[name]

    @property
    def train(self) -> SplitEmbeddings:
        out = self.split("train")
        assert out is not None
        return out

    def _embed(self, ds: Dataset, name: str) -> SplitEmbeddings:
        labels = _labels(ds)
        pos = stratified_sample(labels, self.max_rows, self.ctx.config.seed)
        texts = ds.frame["text"].astype(str).to_numpy()[pos].tolist()
        ids = ds.frame["id"].to_numpy(dtype=object)[pos].tolist()
        note = None
        if len(pos) < len(ds):
            note = (f"{name}: meaning-level signals read a stratified sample of {len(pos)} of {len(ds)} rows "
                    f"(embeddings.max_rows = {self.max_rows})")
        return SplitEmbeddings(vectors=self.embedder(texts), positions=pos, ids=ids,
                               labels=[labels[i] for i in pos], total_rows=len(ds), note=note)
