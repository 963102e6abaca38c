"""Shared text features, computed once per run and reused by every check that needs them.

`Features` is a lazy facade over a run's `AuditData` (dataset.py): nothing is computed until a check
asks for it (through `ctx.features`, context.py).
- text.py        normalisation and tokenisation
- style.py       per-row style/messiness measurements (length, casing, punctuation, typos, ...)
- neighbors.py   MinHash LSH near-duplicate groups and cross-split neighbour look-ups
- classifier.py  TF-IDF word+char features and cross-validated out-of-fold probabilities
- embeddings.py  sentence embeddings (optional `embed` extra), run_embeddings.py per split; semantic*.py
                 the meaning-level analyses on them
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from audit_agent.dataset import AuditData
    from audit_agent.features.classifier import OOFResult
    from audit_agent.features.label_signals import LabelIssues
    from audit_agent.features.neighbors import NeighborIndex
    from audit_agent.features.run_embeddings import RunEmbeddings


class Features:
    """Lazily computed features of the training set (and, where asked, of eval/real)."""

    def __init__(self, ctx: AuditData) -> None:
        self.ctx = ctx

    @cached_property
    def normalized(self) -> list[str]:
        """Normalised training texts (see `text.normalize`), aligned with `ctx.train.frame`."""
        from audit_agent.features.text import normalize

        return [normalize(t) for t in self.ctx.train.texts]

    def style(self, split: str = "train") -> pd.DataFrame:
        """Per-row style measurements of a split ("train", "eval" or "real"), cached per split.
        Label-name words count as correctly spelled; without wordfreq, eval and real rows are judged
        against the training set's word counts."""
        from audit_agent.features.style import split_style

        if split not in self._styles:
            reference = None if split == "train" or getattr(self.ctx, split) is None else self._train_word_counts
            self._styles[split] = split_style(self.ctx, split, reference)
        return self._styles[split]

    @cached_property
    def _styles(self) -> dict[str, pd.DataFrame]:
        return {}

    @cached_property
    def _train_word_counts(self) -> dict[str, int] | None:
        """Without wordfreq: the training set's token counts (None when wordfreq is installed)."""
        from audit_agent.features.style import train_token_counts

        return train_token_counts(self.ctx.train)

    @cached_property
    def neighbors(self) -> NeighborIndex:
        """MinHash LSH index over the training texts."""
        from audit_agent.features.neighbors import NeighborIndex

        cfg = self.ctx.config.checks
        return NeighborIndex.build(self.normalized, threshold=cfg.near_duplicate_threshold,
                                   num_perm=cfg.minhash_perm, seed=self.ctx.config.seed)

    def oof_if_computed(self) -> OOFResult | None:
        """The out-of-fold result when a check already computed it, else None (never computes it)."""
        value = vars(self).get("oof")
        return value if value is not None else None

    @cached_property
    def oof(self) -> OOFResult:
        """Out-of-fold class probabilities from a cross-validated text classifier (classification only)."""
        from audit_agent.features.classifier import out_of_fold

        return out_of_fold(self.ctx.train, folds=self.ctx.config.checks.cv_folds, seed=self.ctx.config.seed)

    @cached_property
    def embeddings_skipped(self) -> str | None:
        """Why this run has no sentence embeddings (extra not installed, or turned off); None when it has."""
        from audit_agent.features.run_embeddings import skip_reason

        return skip_reason(self.ctx.config)

    @cached_property
    def embeddings(self) -> RunEmbeddings | None:
        """Sentence embeddings of the splits (`.split("train")`, ...), or None (see `embeddings_skipped`)."""
        if self.embeddings_skipped is not None:
            return None
        from audit_agent.features.run_embeddings import RunEmbeddings

        return RunEmbeddings(self.ctx)

    def label_issues(self, threshold: float) -> LabelIssues:
        """Per-row label-issue signals from the out-of-fold results (an engine may supply them)."""
        from audit_agent.features.label_signals import detect_label_issues

        return detect_label_issues(self.oof, threshold=threshold)
