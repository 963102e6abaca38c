"""The first pass over every partition: what each row's text is (exact identity, openings, endings)
and the document frequencies the hashed classifier features need.

`scan_partition` returns a small `ScanPart` for the driver and the partition's normalised texts,
which stay in the engine's store for the near-duplicate stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from audit_agent.checks.phrasing import ending_keys
from audit_agent.features.classifier import HASH_FEATURES, HashedFeatures
from audit_agent.features.slots import mask_many, normalize_many
from audit_agent.features.text import normalize

# two keys of pandas' SipHash: a 128-bit identity of each normalised text
HASH_KEYS = ("audit-agent-ex01", "audit-agent-ex02")
OPENING_SPARE = 3  # tokens kept beyond `opening_words`: enough to grow an opening by 2 and see one more


@dataclass
class ScanPart:
    """Per-row results of one partition (aligned with its rows) and its feature document frequencies."""

    h1: np.ndarray  # uint64: the normalised text's identity, first half
    h2: np.ndarray  # uint64: second half
    opening: pd.Categorical[Any]  # first opening_words + OPENING_SPARE slot-normalised tokens
    ending: pd.Categorical[Any]  # the last sentence key (None for single-sentence rows)
    df: list[np.ndarray]  # per hashed feature part: rows using each column


def text_hashes(normalized: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit SipHashes of each text (equal texts, equal pairs)."""
    values = np.asarray(normalized, dtype=object)
    return (pd.util.hash_array(values, hash_key=HASH_KEYS[0], categorize=False),
            pd.util.hash_array(values, hash_key=HASH_KEYS[1], categorize=False))


def scan_partition(part: pd.DataFrame, opening_words: int, with_df: bool) -> tuple[ScanPart, list[str]]:
    """Identity hashes, opening prefixes and ending keys of every row, and (when the classifier runs on
    hashed features) the partition's document frequency of every hashed column."""
    texts = [str(t) for t in part["text"].tolist()]
    normalized = [normalize(t) for t in texts]
    h1, h2 = text_hashes(normalized)
    masked = mask_many(texts)
    keep = opening_words + OPENING_SPARE
    prefixes = [" ".join(t.split()[:keep]) for t in normalize_many(masked)]
    opening = pd.Categorical(prefixes)
    ending = pd.Categorical(ending_keys(masked))
    df: list[np.ndarray] = []
    if with_df:
        hasher = HashedFeatures()
        for p in range(len(HashedFeatures.PARTS)):
            df.append(np.bincount(hasher._block(texts, p).indices, minlength=HASH_FEATURES).astype(np.int64))
    return ScanPart(h1, h2, opening, ending, df), normalized


def codes_of(h1: np.ndarray, h2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct-text code of every row, numbered by first appearance; first row of every code), the
    same numbering `pd.factorize(normalized, sort=False)` gives. A 64-bit collision between two
    different texts (never seen; checked with the second hash) raises."""
    codes, _ = pd.factorize(h1, sort=False)
    n_unique = int(codes.max()) + 1 if len(codes) else 0
    first = np.full(n_unique, -1, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]
    if not np.array_equal(h2, h2[first[codes]]):
        raise RuntimeError("two different texts share a 64-bit hash; rerun with --engine local")
    return codes.astype(np.int64), first
