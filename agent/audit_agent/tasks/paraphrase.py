"""Paraphrase task: the LLM rewrites one over-polished row in one messy real-user style per call
(prompts/paraphrase.jinja, mode "rewrite"), and optionally judges whether a candidate keeps its
label (mode "check"). One short bounded field per call, so a weak local model stays on task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from audit_agent.llm.base import BudgetExhausted, CallFailed, LLMClient

PROMPT = "paraphrase"
MAX_REWRITE_CHARS = 160
REWRITE_MAX_TOKENS = 80
CHECK_MAX_TOKENS = 12

# One style per candidate, cycled: candidate k of a row asks for STYLES[k % len(STYLES)]. Only what
# needs a language model (rephrasing, an indirect ask, clipping to the core, irritation); the surface
# style (case, punctuation, typos, abbreviations) is applied afterwards by tasks/messify.py.
STYLES = (
    "clipped like a quick text message, only the core of the problem",
    "irritated, it already went wrong once",
    "do not ask directly, just say what happened",
    "mention a second small problem too",
    "short and casual, in your own words",
)


# A worked example (paraphrase.jinja) from another domain; verification rejects copies of it.
SHOT = {
    "text": "Hello, could you please tell me whether my flight to Rome tomorrow is delayed? Thank you.",
    "style": "clipped like a quick text message, only the core of the problem",
    "rewrite": "is my rome flight tmrw delayed or not",
}


class Rewrite(BaseModel):
    """One messy rewrite."""

    rewrite: str = Field(max_length=MAX_REWRITE_CHARS + 60)


class LabelCheck(BaseModel):
    """The LLM's opinion whether a candidate still belongs to its label."""

    keeps_label: Literal["yes", "no"]


def style_for(k: int) -> str:
    return STYLES[k % len(STYLES)]


def label_words(label: str) -> str:
    """The label name as words ("card_arrival" -> "card arrival"), the words a rewrite should avoid."""
    return " ".join(label.replace("_", " ").replace("-", " ").split())


def ask_rewrites(client: LLMClient, items: Sequence[Mapping[str, Any]]) -> list[Rewrite | CallFailed | BudgetExhausted]:
    """One call per (row, style): items hold text, label_words, style, real_examples."""
    variables = [{**v, "mode": "rewrite", "shot": SHOT} for v in items]
    return client.structured_many(PROMPT, variables, Rewrite, max_tokens=REWRITE_MAX_TOKENS)


def ask_label_checks(client: LLMClient, items: Sequence[Mapping[str, Any]]) -> list[
        LabelCheck | CallFailed | BudgetExhausted]:
    """One call per candidate: items hold candidate and label."""
    variables = [{**v, "mode": "check"} for v in items]
    return client.structured_many(PROMPT, variables, LabelCheck, max_tokens=CHECK_MAX_TOKENS)
