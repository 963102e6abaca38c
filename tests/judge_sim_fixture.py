"""A pytest fixture that starts the simulated judge (bench/judge_sim.py) and stops it after the test.

    # tests/conftest.py makes `judge_sim` available to every test
    from tests.judge_sim_fixture import planted_truth, sim_llm

    def test_something(judge_sim, tmp_path):
        sim = judge_sim(planted_truth(), accuracy=0.9, invent_quote_rate=0.1)
        config = AuditConfig.model_validate({"llm": sim_llm(sim, tmp_path / "cache")})
        ...                                   # sim.stats(), sim.decisions
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ROOT / "fixtures" / "support"
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

from judge_sim import JudgeSim, Truth, parse_judge_prompt  # noqa: E402

__all__ = ["JudgeSim", "Truth", "judge_sim", "parse_judge_prompt", "planted_truth", "sim_llm"]


def planted_truth(train: Path = SUPPORT / "train.csv", planted: Path = SUPPORT / "planted.json") -> Truth:
    """The truth of fixtures/support/train.csv: every row's label with the planted flips undone."""
    true_of = {p["id"]: p["true"] for p in json.loads(planted.read_text(encoding="utf-8"))["label_flip"]}
    with open(train, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return Truth.from_pairs([r["text"] for r in rows], [true_of.get(r["id"], r["label"]) for r in rows])


def sim_llm(sim: JudgeSim, cache_dir: Path, **overrides: Any) -> dict[str, Any]:
    """The `llm:` settings that point the project's real client at `sim` (no key, fast retries)."""
    return {"model": "openai/sim", "api_base": sim.api_base, "cache_dir": str(cache_dir), "max_concurrency": 8,
            "retries": 1, "backoff_seconds": 0.01, "request_timeout": 10.0,
            "budget": {"max_calls": 100_000, "max_tokens": 10**9}, **overrides}


@pytest.fixture
def judge_sim() -> Iterator[Callable[..., JudgeSim]]:
    """A factory: `judge_sim(truth, accuracy=..., invent_quote_rate=..., follow_injection_rate=...,
    seed=..., latency=...)` starts a sim on a free port; every sim started is stopped at teardown."""
    started: list[JudgeSim] = []

    def start(truth: Truth, **settings: Any) -> JudgeSim:
        sim = JudgeSim(truth, **settings).start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()
