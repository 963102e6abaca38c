"""Driver side of the near-duplicate stage: submit the sketches, the band shuffle, the routers and
one verifier per pair of partitions with candidates (near.py, pairs.py), answer the eval/real
look-ups, and collect the verified pairs. References to a finished step's pieces are dropped as soon
as the next step holds them, so the store frees them when those tasks end."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from audit_agent.config import AuditConfig
from audit_agent.engine import near, pairs
from audit_agent.engine.base import Engine, Window
from audit_agent.engine.features import EngineNeighbors
from audit_agent.engine.scan import text_hashes
from audit_agent.engine.tokens import merge_doc_freq
from audit_agent.features.text import normalize


def code_starts(parts: Any, codes: np.ndarray, first: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """Per partition: (local positions of the rows where a distinct text first occurs, its first code)."""
    out = []
    for p in range(len(parts.refs)):
        lo, hi = parts.bounds(p)
        rows = np.arange(lo, hi)
        firsts = rows[first[codes[rows]] == rows]
        out.append((firsts - lo, int(codes[firsts[0]]) if len(firsts) else -1))
    # a partition without a new text starts where the next one does (its block is empty)
    nxt = len(first)
    for p in range(len(out) - 1, -1, -1):
        if out[p][1] < 0:
            out[p] = (out[p][0], nxt)
        nxt = out[p][1]
    return out


def near_pairs(engine: Engine, parts: Any, config: AuditConfig, codes: np.ndarray, first: np.ndarray,
               first_hashes: tuple[np.ndarray, np.ndarray], others: dict[str, list[str]]) -> EngineNeighbors:
    """Near pairs of the distinct training texts and the eval/real answers, as `NeighborIndex` gives."""
    threshold = config.checks.near_duplicate_threshold
    n_parts = len(parts.refs)
    blocks = code_starts(parts, codes, first)
    starts = np.array([b[1] for b in blocks], dtype=np.int64)
    params: dict[str, Any] = {"num_perm": config.checks.minhash_perm, "seed": config.seed,
                              "candidate_threshold": max(0.2, threshold - 0.35), "threshold": threshold,
                              "n_unique": len(first), "reducers": max(2, n_parts), "code_starts": starts}
    reducers = params["reducers"]
    params_ref = engine.put(params)
    window = Window(engine)  # one stage's tasks at a time, a few in flight (base.Window)
    sketches = [window.submit(near.sketch_block, parts.normalized[p], local, start, params_ref,
                              outputs=reducers + 3) for p, (local, start) in enumerate(blocks)]
    parts.normalized = []  # the sketch tasks hold them until they end
    tables = [s[reducers] for s in sketches]
    sigs = [s[reducers + 2] for s in sketches]
    # eval/real texts ride the same shuffle as queries
    queries: list[str] = []
    spans: dict[str, tuple[list[int], int]] = {}
    for name, texts in others.items():
        normalized = [normalize(t) for t in texts]
        uniq, where = np.unique(np.asarray(normalized, dtype=object), return_inverse=True)
        spans[name] = (where.ravel().tolist(), len(queries))
        queries.extend(str(u) for u in uniq)
    query_pieces = near.query_records(queries, params) if queries else [None] * reducers
    buckets = [window.submit(near.bucket_pairs, params_ref, query_pieces[r], *[s[r] for s in sketches],
                             outputs=n_parts + 1) for r in range(reducers)]
    doc_ref = engine.put(merge_doc_freq(engine.get([s[reducers + 1] for s in sketches])))
    del sketches
    routes = [window.submit(pairs.route_pairs, params_ref, *[b[a] for b in buckets], outputs=n_parts + 1)
              for a in range(n_parts)]
    query_refs = [b[n_parts] for b in buckets]
    del buckets
    sizes = engine.get([r[n_parts] for r in routes])
    verified = []
    for a in range(n_parts):
        for b in range(a, n_parts):
            if sizes[a][b] == 0:
                continue
            other = () if a == b else (tables[b], sigs[b], int(starts[b]))
            verified.append(window.submit(pairs.verify_block_pair, params_ref, doc_ref, routes[a][b], tables[a],
                                          sigs[a], int(starts[a]), *other))
    del routes
    answers: dict[int, list[list[tuple[int, float]]]] = {}
    if queries:
        found = engine.get(query_refs)
        q_ids = np.concatenate([f[0] for f in found])
        q_codes = np.concatenate([f[1] for f in found])
        exact = _exact_codes(queries, *first_hashes)
        has = np.flatnonzero(exact >= 0)
        q_ids, q_codes = np.concatenate([q_ids, has]), np.concatenate([q_codes, exact[has]])
        o, m, sims = engine.get(engine.submit(near.verify_queries, params_ref, doc_ref, queries, q_ids, q_codes,
                                              *tables))
        per_query = _rank_answers(len(queries), o, m, sims, exact, first)
        for name, (inverse, offset) in spans.items():
            texts = [normalize(t) for t in others[name]]
            answers[EngineNeighbors.key(texts)] = [per_query[offset + i] for i in inverse]
    del query_refs
    u: list[np.ndarray] = []
    v: list[np.ndarray] = []
    s: list[np.ndarray] = []
    for ref in verified:
        part = engine.get(ref)
        u.append(part[0])
        v.append(part[1])
        s.append(part[2])
    pair_arr = np.vstack([np.concatenate(u), np.concatenate(v)]) if u else np.zeros((2, 0), np.int64)
    sim_arr = np.concatenate(s) if s else np.zeros(0)
    order = np.lexsort((pair_arr[1], pair_arr[0]))
    return EngineNeighbors(codes, first, pair_arr[:, order], sim_arr[order], threshold, answers)


def _exact_codes(queries: list[str], h1_first: np.ndarray, h2_first: np.ndarray) -> np.ndarray:
    """The code of the training text identical to each query text, or -1 (by the two hashes)."""
    q1, q2 = text_hashes(queries)
    pos = pd.Index(h1_first).get_indexer(q1)
    ok = (pos >= 0) & (h2_first[np.clip(pos, 0, None)] == q2)
    return np.where(ok, pos, -1).astype(np.int64)


def _rank_answers(n_queries: int, o: np.ndarray, m: np.ndarray, sims: np.ndarray, exact: np.ndarray,
                  first: np.ndarray) -> list[list[tuple[int, float]]]:
    """Per query text: (first position of the matching training text, similarity), best first, the
    identical text first: `NeighborIndex.query`'s order."""
    firsts = first[m]
    order = np.lexsort((firsts, m != exact[o], -sims, o))
    o, firsts, sims = o[order], firsts[order], sims[order]
    bounds = np.searchsorted(o, np.arange(n_queries + 1))
    fl, sl = firsts.tolist(), sims.tolist()
    return [list(zip(fl[a:b], sl[a:b], strict=True)) for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(),
                                                                        strict=True)]
