"""A simulated text classifier behind an OpenAI-compatible chat-completions server on 127.0.0.1, for
the `audit-agent stress` tests and bench/stress_sim.py.

    truth = {text: (label, kind)}        # every text it may be asked: clean rows and their variants
    with ClassifierSim(truth, labels, rates={"clean": 0.95, "typos": 0.7}, seed=0) as sim:
        audit-agent stress DATA --model openai/sim --api-base {sim.api_base}
        sim.answer(text)                 # the label it gives that text (deterministic)

It knows the true label of every text. It answers a text of kind k correctly when a hash-seeded
uniform draw u(text) in [0, 1) is below the planted rate `rates[k]` (default 1.0), else with another
label picked by the same hash; a share `invent` of those wrong answers names a label that does not
exist. A text it was not told about gets the invented label "unseen-text". So the accuracy a run
measures is checkable twice: exactly, by replaying `answer` on the texts it scored, and against the
planted rate, within binomial noise. It reads the text between <row> and </row> of the last user
message (prompts/stress_classify.jinja) and answers as an instructor tool call, a llama.cpp-style
`response_format` reply or plain JSON content: the contract docs/stress.md gives for a classifier
endpoint. Only the standard library is used (it reuses tests/faultserver.py's HTTP plumbing).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from tests.faultserver import FaultServer

_ROW = re.compile(r"<row>\s*(.*?)\s*</row>", re.DOTALL)
UNSEEN = "unseen-text"


def _key(text: str) -> str:
    return " ".join(text.split())


class ClassifierSim(FaultServer):
    """A FaultServer whose `ok` replies are a simulated classifier's labels."""

    def __init__(self, truth: Mapping[str, tuple[str, str]], labels: Sequence[str], *,
                 rates: Mapping[str, float] | None = None, invent: float = 0.0, seed: int = 0,
                 **server: Any) -> None:
        super().__init__(seed=seed, **server)
        self.truth = {_key(t): v for t, v in truth.items()}
        self.labels = sorted(labels)
        self.planted = dict(rates or {})
        self.invent = invent
        self.sim_seed = seed
        self.asked: Counter[str] = Counter()
        self.keep_bodies = False

    def _draws(self, text: str) -> tuple[float, float, int]:
        digest = hashlib.sha256(f"{self.sim_seed}:{_key(text)}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2.0 ** 64
        v = int.from_bytes(digest[8:16], "big") / 2.0 ** 64
        return u, v, int.from_bytes(digest[16:24], "big")

    def kind_of(self, text: str) -> str | None:
        known = self.truth.get(_key(text))
        return known[1] if known else None

    def answer(self, text: str) -> str:
        """The label this classifier gives `text` (the same on every call)."""
        known = self.truth.get(_key(text))
        if known is None:
            return UNSEEN
        label, kind = known
        u, v, pick = self._draws(text)
        if u < self.planted.get(kind, 1.0):
            return label
        if v < self.invent:
            return f"not_a_label_{pick % 7}"
        others = [lab for lab in self.labels if lab != label] or [label]
        return others[pick % len(others)]

    def _answer(self, body: dict[str, Any], mode: str) -> dict[str, Any]:
        messages = body.get("messages", [])
        user = next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), "")
        match = _ROW.search(user)
        text = match.group(1) if match else user
        with self.lock:
            self.asked[self.kind_of(text) or "unknown"] += 1
        content = json.dumps({"label": self.answer(text)})
        tools = body.get("tools") or []
        message: dict[str, Any] = {"role": "assistant", "content": None if tools else content}
        if tools:
            name = tools[0].get("function", {}).get("name", "LabelReply")
            message["tool_calls"] = [{"id": "call_0", "type": "function",
                                      "function": {"name": name, "arguments": content}}]
        tokens = sum(len(str(m.get("content") or "")) for m in messages) // 4
        return {"id": "chatcmpl-sim", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "sim"),
                "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tools else "stop"}],
                "usage": {"prompt_tokens": tokens, "completion_tokens": 8, "total_tokens": tokens + 8}}
