"""The stress task: ask the model under test for one label per text (prompts/stress_classify.jinja +
`LabelReply`), so any chat model, or a plain classifier behind an OpenAI-compatible chat API, can be
stressed through the project's LLM client (cache, retries and budget apply).

The reply schema lists the labels as an enum (up to `MAX_ENUM_LABELS`), so constrained decoding can
only produce a label, but validation accepts any string: a label the model invents comes back and is
counted as a wrong answer (and reported), not retried away.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, Field, create_model

from audit_agent.llm.base import BudgetExhausted, CallFailed, LLMClient
from audit_agent.tasks.judge import MAX_ENUM_LABELS, sanitize_row_text, truncate_text

PROMPT = "stress_classify"
REPLY_OVERHEAD_TOKENS = 24


class LabelReply(BaseModel):
    """The model's answer: one label."""

    label: str


@lru_cache(maxsize=16)
def reply_schema(labels: tuple[str, ...]) -> type[LabelReply]:
    """`LabelReply` whose JSON schema names the labels (an enum for small sets) and bounds the length;
    validation takes any string, an over-long one cut to that bound."""
    limit = max(max((len(lab) for lab in labels), default=100) * 2, 40)
    extra = {"enum": list(labels)} if 0 < len(labels) <= MAX_ENUM_LABELS else None
    clip = BeforeValidator(lambda v: v[:limit] if isinstance(v, str) else v)
    label_type = Annotated[str, clip, Field(max_length=limit, json_schema_extra=extra)]
    return create_model("LabelReply", __base__=LabelReply, label=(label_type, ...))


def reply_tokens(labels: Sequence[str]) -> int:
    """A reply limit that fits the longest label in JSON (a tool call or a bare object)."""
    return REPLY_OVERHEAD_TOKENS + max((len(lab) for lab in labels), default=20) // 2


def classify_texts(client: LLMClient, texts: Sequence[str], labels: Sequence[str], *,
                   max_row_chars: int = 1500) -> list[str | CallFailed | BudgetExhausted]:
    """One call per text (concurrently where the client allows); the label the model named, or the
    CallFailed / BudgetExhausted of that call, in input order."""
    schema = reply_schema(tuple(labels))
    shared = {"labels": list(labels)}
    variables = [{**shared, "text": sanitize_row_text(truncate_text(t, max_row_chars)[0])} for t in texts]
    replies = client.structured_many(PROMPT, variables, schema, max_tokens=reply_tokens(labels))
    return [r if isinstance(r, CallFailed | BudgetExhausted) else r.label.strip() for r in replies]
