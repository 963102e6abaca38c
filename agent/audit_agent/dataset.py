"""The loaded data: one table per split (`Dataset`) and a run's splits with its config (`AuditData`).

What a check sees is `AuditContext` (context.py): this data plus the shared features computed from
it. `Features` is built from an `AuditData`, so the imports point one way: context -> features -> dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd

if TYPE_CHECKING:
    from audit_agent.config import AuditConfig

TaskKind = Literal["classification", "generation"]


@dataclass
class Dataset:
    """One loaded split.

    `frame` has the columns `id` (str: the id column's value, else the 0-based data row position),
    `text` (str), `label` (str, or None when the split has no labels) and, when present, `task`.
    For instruction-tuning data `label` holds the target text and `kind` is "generation".
    """

    path: Path
    frame: pd.DataFrame
    kind: TaskKind = "classification"
    text_col: str = "text"
    label_col: str | None = "label"
    id_col: str | None = None
    fmt: str = "csv"
    notes: list[str] = field(default_factory=list)
    bad_rows: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def has_labels(self) -> bool:
        return "label" in self.frame.columns and bool(self.frame["label"].notna().any())

    @property
    def texts(self) -> list[str]:
        return self.frame["text"].tolist()

    @property
    def ids(self) -> list[str]:
        return self.frame["id"].tolist()

    @property
    def labels(self) -> list[str]:
        return self.frame["label"].tolist()

    @cached_property
    def label_set(self) -> list[str]:
        """Sorted distinct labels (classification only; empty for generation data)."""
        if self.kind != "classification" or not self.has_labels:
            return []
        return sorted(self.frame["label"].dropna().unique().tolist())


@dataclass
class AuditData:
    """A run's loaded data: the training set, the optional eval and real splits, the annotation
    guide's text, and the config. `AuditContext` (context.py) adds the shared features."""

    train: Dataset
    config: AuditConfig
    eval: Dataset | None = None
    real: Dataset | None = None
    guide_text: str | None = None
