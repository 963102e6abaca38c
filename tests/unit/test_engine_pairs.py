"""Near-duplicate pairs routed by the pair of partitions they join (engine/pairs.py) and verified from
token tables made once in the sketch stage (engine/tokens.py): the same verified pairs as one
partition and as `NeighborIndex`, each verifier holding two partitions' tables, no text tokenised
twice."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from audit_agent.config import AuditConfig
from audit_agent.engine import near, pairs, tokens
from audit_agent.engine.base import LocalEngine
from audit_agent.engine.build import Partitions
from audit_agent.engine.features import EngineNeighbors
from audit_agent.engine.near_stage import near_pairs
from audit_agent.engine.scan import codes_of, text_hashes
from audit_agent.features.neighbors import NeighborIndex
from audit_agent.features.text import normalize
from audit_agent.features.word_similarity import WordTable, pair_similarities
from tests.engine_data import make_rows


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [normalize(t) for t in make_rows(1500, seed=11)["text"]]


def _run(normalized: list[str], n_parts: int, queries: list[str] | None = None) -> EngineNeighbors:
    engine = LocalEngine()
    parts = Partitions()
    size = -(-len(normalized) // n_parts)
    for lo in range(0, len(normalized), size):
        chunk = normalized[lo:lo + size]
        parts.refs.append(engine.put(None))
        parts.starts.append(lo)
        parts.sizes.append(len(chunk))
        parts.normalized.append(engine.put(chunk))
    h1, h2 = text_hashes(normalized)
    codes, first = codes_of(h1, h2)
    others = {"eval": queries} if queries else {}
    return near_pairs(engine, parts, AuditConfig(), codes, first, (h1[first], h2[first]), others)


def _pairs(nb: EngineNeighbors) -> dict[tuple[int, int], float]:
    return dict(zip(map(tuple, nb.unique_pairs.T.tolist()), nb.unique_similarity.tolist(), strict=True))


def test_pairs_routed_by_partition_pair_match_one_partition_and_the_neighbor_index(texts: list[str]) -> None:
    one, many = _run(texts, 1), _run(texts, 6)
    assert len(_pairs(one)) > 50
    assert _pairs(many) == _pairs(one)  # the same words in the same order: identical floats
    local = NeighborIndex.build(texts, threshold=0.8, num_perm=128, seed=0)
    expected = dict(zip(map(tuple, local.unique_pairs.T.tolist()), local.unique_similarity.tolist(), strict=True))
    assert _pairs(many).keys() == expected.keys()
    assert list(_pairs(many).values()) == pytest.approx([expected[k] for k in _pairs(many)], abs=1e-9)


def test_each_verifier_holds_two_partitions_and_no_text_is_tokenised_twice(texts: list[str],
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    tokenised: list[str] = []
    real_table = tokens.token_table

    def counting(batch: list[str]) -> tokens.TokenTable:
        tokenised.extend(batch)
        return real_table(batch)

    calls: list[tuple[int, int, set[int], set[int]]] = []
    seen_starts: list[np.ndarray] = []
    real_verify = pairs.verify_block_pair

    def watching(params: dict[str, Any], doc_freq: Any, flat: np.ndarray, table_a: tokens.TokenTable, sig_a: Any,
                 start_a: int, table_b: tokens.TokenTable | None = None, sig_b: Any = None,
                 start_b: int = 0) -> Any:
        starts = params["code_starts"]
        seen_starts.append(starts)
        u, v = flat // params["n_unique"], flat % params["n_unique"]
        calls.append((len(table_a), len(table_b) if table_b is not None else 0,
                      set(near.block_of(u, starts).tolist()), set(near.block_of(v, starts).tolist())))
        return real_verify(params, doc_freq, flat, table_a, sig_a, start_a, table_b, sig_b, start_b)

    monkeypatch.setattr(near, "token_table", counting)
    monkeypatch.setattr(pairs, "verify_block_pair", watching)
    queries = [*texts[:40], "a query text seen nowhere in training"]
    nb = _run(texts, 5, queries)
    distinct = len(nb.first_position)
    assert len(tokenised) == distinct + len(set(queries))  # training texts once (sketch), queries once
    assert len(set(tokenised[:distinct])) == distinct
    block = int(np.diff(np.append(seen_starts[0], distinct)).max())
    assert len(calls) > 5
    for rows_a, rows_b, blocks_u, blocks_v in calls:
        assert rows_a + rows_b <= 2 * block
        assert len(blocks_u) == 1 and len(blocks_v) == 1  # every pair of a verifier joins the same two partitions
        assert min(blocks_u) <= min(blocks_v)
    assert any(found for found in nb.query(queries))


def test_joined_token_tables_score_as_a_table_built_from_the_texts(texts: list[str]) -> None:
    distinct = list(dict.fromkeys(texts))
    a, b = tokens.token_table(distinct[:300]), tokens.token_table(distinct[300:600])
    doc = tokens.merge_doc_freq([a.doc_freq(), b.doc_freq()])
    rows_a, rows_b = np.arange(0, 300, 3), np.arange(1, 300, 7)
    joined = tokens.join_rows([(a, rows_a), (b, rows_b)], doc, 600)
    chosen = [distinct[i] for i in rows_a] + [distinct[300 + i] for i in rows_b]
    assert list(joined.texts) == chosen
    whole = WordTable.build(distinct[:600])  # weights from the same 600 texts
    left, _ = whole.encode(chosen)
    k = np.arange(200)
    i, j = k % len(rows_a), len(rows_a) + k % len(rows_b)
    assert pair_similarities(joined, joined, i, j) == pytest.approx(pair_similarities(left, left, i, j), abs=1e-12)
