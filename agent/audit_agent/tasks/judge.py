"""The judge task: ask a model whether a row's label fits its text (prompts/judge.jinja + `JudgeVerdict`).

A `Framing` says which prompt template and which label order a judge sees: the default one, or the
second judge's (prompts/judge_second.jinja with the labels in a seeded shuffled order), so one model
can be asked the same question twice in two different ways."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, create_model

from audit_agent.context import AuditContext
from audit_agent.llm.base import BudgetExhausted, CallFailed, LLMClient

PROMPT = "judge"
SECOND_PROMPT = "judge_second"
MAX_ENUM_LABELS = 200
"""Label sets up to this size become an enum in the schema, so constrained decoding can only
produce a valid label (CLINC150 with the embedded model: 60 of 60 valid labels at the same 0.87 s per
judgement, against 29 of 60 as free text); bigger sets get a length-bounded string (checked by
verify/judge.py, spelling variants mapped by verify.judge.canonical_label). OpenAI's structured
outputs take up to 1,000 enum values and cap their total length only above 250 values."""
EVIDENCE_MAX = 60
REASON_MAX = 60
GUIDE_MAX_CHARS = 1500
LABELS_MAX_CHARS = 3000
_DELIMITER = re.compile(r"</?\s*row\s*>", re.IGNORECASE)
_ROLE_HEADER = re.compile(r"^###", re.MULTILINE)


class Verdict(StrEnum):
    SUPPORTED = "supported"
    AMBIGUOUS = "ambiguous"
    CONTRADICTED = "contradicted"


class Confidence(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


def _clip(limit: int) -> BeforeValidator:
    """Cut an over-long string instead of rejecting the whole reply (a cut quote is still a quote)."""
    return BeforeValidator(lambda v: v[:limit] if isinstance(v, str) else v)


class JudgeVerdict(BaseModel):
    """The judge's reply. Enums come first and free text is bounded: short replies are fast replies."""

    verdict: Verdict
    best_label: str = Field(max_length=200)
    evidence: Annotated[str, _clip(EVIDENCE_MAX)] = Field(max_length=EVIDENCE_MAX)
    reason: Annotated[str, _clip(REASON_MAX)] = Field(max_length=REASON_MAX)
    confidence: Confidence


@lru_cache(maxsize=16)
def verdict_schema(labels: tuple[str, ...]) -> type[JudgeVerdict]:
    """`JudgeVerdict` with `best_label` restricted to `labels` (an enum for small sets)."""
    if not labels:
        return JudgeVerdict
    if len(labels) <= MAX_ENUM_LABELS:
        label_type: Any = Literal[labels]  # type: ignore[valid-type]
        return create_model("JudgeVerdict", __base__=JudgeVerdict, best_label=(label_type, ...))
    longest = max(len(lab) for lab in labels)
    return create_model("JudgeVerdict", __base__=JudgeVerdict,
                        best_label=(str, Field(max_length=longest)))


@dataclass(frozen=True)
class RowInput:
    """One row as the judge sees it: `text` is cut to `llm.max_row_chars` when `truncated`."""

    row_id: str
    full_text: str
    text: str
    label: str
    truncated: bool


def truncate_text(text: str, max_chars: int) -> tuple[str, bool]:
    """Keep the head (2/3) and tail (1/3) of an over-long text, with a visible cut marker."""
    if len(text) <= max_chars:
        return text, False
    head = max_chars * 2 // 3
    tail = max_chars - head
    cut = len(text) - head - tail
    return f"{text[:head]} [... {cut} characters cut ...] {text[len(text) - tail:]}", True


def sanitize_row_text(text: str) -> str:
    """Neutralise the data delimiters inside row text, so a row cannot close its own <row> block,
    and indent lines starting with '###', so a row cannot start a chat message of its own
    (render_prompt splits messages on '### system|user|assistant' lines)."""
    return _ROLE_HEADER.sub(" ###", _DELIMITER.sub("(row)", text))


def make_row_input(ctx: AuditContext, row_id: str, text: str, label: str) -> RowInput:
    cut, truncated = truncate_text(str(text), ctx.config.llm.max_row_chars)
    return RowInput(str(row_id), str(text), cut, str(label), truncated)


def row_input(ctx: AuditContext, row_id: str) -> RowInput:
    """Look one row up by its id (a single scan; the agent loop uses its own index)."""
    frame = ctx.train.frame
    hits = frame.index[frame["id"].astype(str) == str(row_id)]
    if len(hits) == 0:
        raise KeyError(f"row id {row_id!r} is not in the training data")
    row = frame.loc[hits[0]]
    return make_row_input(ctx, str(row_id), row["text"], row["label"])


@dataclass(frozen=True)
class Framing:
    """How a judge is asked: the prompt template and the order of the labels (in the prompt and the
    schema's enum)."""

    prompt: str = PROMPT
    label_order: tuple[str, ...] | None = None

    def labels(self, ctx: AuditContext) -> tuple[str, ...]:
        return self.label_order if self.label_order is not None else tuple(ctx.train.label_set)


DEFAULT_FRAMING = Framing()


def second_framing(ctx: AuditContext, seed: int) -> Framing:
    """The second framing: prompts/judge_second.jinja, labels in a seeded shuffled order."""
    import random

    labels = list(ctx.train.label_set)
    random.Random(seed + 104729).shuffle(labels)
    return Framing(SECOND_PROMPT, tuple(labels))


def shared_variables(ctx: AuditContext, framing: Framing = DEFAULT_FRAMING) -> dict[str, Any]:
    """The part of the prompt that is the same for every row (label list, guide)."""
    labels: list[str] = []
    used = 0
    for lab in framing.labels(ctx):
        used += len(lab) + 2
        if used > LABELS_MAX_CHARS:
            break
        labels.append(lab)
    guide = (ctx.guide_text or "").strip()
    if len(guide) > GUIDE_MAX_CHARS:
        guide = guide[:GUIDE_MAX_CHARS] + " [...]"
    return {"labels": labels, "more_labels": len(ctx.train.label_set) - len(labels), "guide": guide or None}


def judge_variables(shared: dict[str, Any], row: RowInput) -> dict[str, Any]:
    return {**shared, "text": sanitize_row_text(row.text), "label": row.label}


def judge_input(client: LLMClient, ctx: AuditContext, row: RowInput, *,
                shared: dict[str, Any] | None = None, max_tokens: int | None = None) -> JudgeVerdict:
    """One judgement. Raises BudgetExhausted / CallFailed like the client."""
    schema = verdict_schema(tuple(ctx.train.label_set))
    variables = judge_variables(shared if shared is not None else shared_variables(ctx), row)
    return client.structured(PROMPT, variables, schema, max_tokens=max_tokens or ctx.config.llm.max_tokens)


def judge_row(client: LLMClient, ctx: AuditContext, row_id: str, *,
              max_tokens: int | None = None) -> JudgeVerdict:
    """Judge the training row `row_id` (its text cut to `llm.max_row_chars`)."""
    return judge_input(client, ctx, row_input(ctx, row_id), max_tokens=max_tokens)


@dataclass
class JudgeOutcome:
    """A batch result: the verdict, or why there is none (`error`; `budget` when the budget refused it)."""

    row: RowInput
    verdict: JudgeVerdict | None
    error: str | None = None
    budget: bool = False


def judge_batch(client: LLMClient, ctx: AuditContext, rows: Sequence[RowInput], *,
                shared: dict[str, Any] | None = None, framing: Framing = DEFAULT_FRAMING) -> list[JudgeOutcome]:
    """Judge rows (concurrently where the client allows), outcomes in input order. A failed call
    becomes an outcome with `error`; a call the budget refused has `budget=True`."""
    if not rows:
        return []
    schema = verdict_schema(framing.labels(ctx))
    shared = shared if shared is not None else shared_variables(ctx, framing)
    replies = client.structured_many(framing.prompt, [judge_variables(shared, row) for row in rows], schema,
                                     max_tokens=ctx.config.llm.max_tokens)
    outcomes = []
    for row, reply in zip(rows, replies, strict=True):
        if isinstance(reply, BudgetExhausted):
            outcomes.append(JudgeOutcome(row, None, str(reply)[:300] or "budget exhausted", budget=True))
        elif isinstance(reply, CallFailed):
            outcomes.append(JudgeOutcome(row, None, str(reply)[:300] or "call failed"))
        else:
            outcomes.append(JudgeOutcome(row, reply))
    return outcomes
