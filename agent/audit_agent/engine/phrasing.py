"""`repeated_opening` and `repeated_ending` from the opening prefixes and ending keys the engine's
scan computed for every row: the checks' own selection (`find_repeats`), growth (`_extend_opening`)
and wording (`repeat_finding`), with no per-row token lists on the driver."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import pandas as pd

from audit_agent.checks.phrasing import (
    MAX_FINDINGS_PER_FIELD,
    TextField,
    _extend_opening,
    _rank,
    find_repeats,
    repeat_finding,
)
from audit_agent.context import AuditContext
from audit_agent.findings import Finding


class _Column(Sequence[str]):
    """One frame column as strings by position, without a list of them all."""

    def __init__(self, values: pd.Series) -> None:
        self._values = values

    def __len__(self) -> int:
        return len(self._values)

    def __getitem__(self, i: Any) -> Any:
        return str(self._values.iat[int(i)])


class _Tokens(Sequence[list[str]]):
    """Row i's first tokens (opening words + 3): all `_extend_opening` reads of a row's tokens."""

    def __init__(self, codes: np.ndarray, tokens: list[list[str]]) -> None:
        self._codes, self._tokens = codes, tokens

    def __len__(self) -> int:
        return len(self._codes)

    def __getitem__(self, i: Any) -> Any:
        return self._tokens[self._codes[int(i)]]


def _field(ctx: AuditContext) -> TextField:
    frame = ctx.train.frame
    labels = None
    if ctx.train.kind == "classification" and ctx.train.has_labels:
        cat = pd.Categorical(frame["label"])
        names = np.asarray(cat.categories, dtype=object)
        labels = np.where(cat.codes >= 0, names[np.clip(cat.codes, 0, None)], None)
    return TextField("text", cast(list[str], _Column(frame["id"])), cast(list[str], _Column(frame["text"])),
                     view=None, labels=labels)  # type: ignore[arg-type]


def _keys(cat: pd.Categorical, key_of: np.ndarray) -> np.ndarray:
    codes = np.asarray(cat.codes)
    return np.asarray(np.where(codes >= 0, key_of[np.clip(codes, 0, None)], None), dtype=object)


def repeated_opening(ctx: AuditContext, opening: pd.Categorical) -> list[Finding]:
    """`checks.phrasing.repeated_opening` on the training texts, from the engine's opening prefixes."""
    cfg = ctx.config.checks
    n_words = cfg.opening_words
    field = _field(ctx)
    tokens = [str(c).split() for c in opening.categories]
    key_of = np.array([" ".join(t[:n_words]) if len(t) > n_words else None for t in tokens], dtype=object)
    keys = cast(list[str | None], _keys(opening, key_of))
    repeats = sorted(find_repeats(keys, field.labels, cfg.repeated_share), key=_rank, reverse=True)
    row_tokens = cast(list[list[str]], _Tokens(np.asarray(opening.codes), tokens))
    extended: dict[str, Any] = {}
    for rep in repeats[:MAX_FINDINGS_PER_FIELD]:
        longer = _extend_opening(rep, row_tokens, n_words, field.labels)
        extended.setdefault(longer.key, longer)
    return [repeat_finding(rep, "repeated_opening", "open with", field, cfg)
            for rep in sorted(extended.values(), key=_rank, reverse=True)]


def repeated_ending(ctx: AuditContext, ending: pd.Categorical) -> list[Finding]:
    """`checks.phrasing.repeated_ending` on the training texts, from the engine's ending keys."""
    cfg = ctx.config.checks
    field = _field(ctx)
    key_of = np.asarray(ending.categories, dtype=object)
    keys = cast(list[str | None], _keys(ending, key_of))
    repeats = sorted(find_repeats(keys, field.labels, cfg.repeated_share), key=_rank, reverse=True)
    return [repeat_finding(rep, "repeated_ending", "end with", field, cfg)
            for rep in repeats[:MAX_FINDINGS_PER_FIELD]]
