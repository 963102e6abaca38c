"""Guide rewrite task: the LLM writes short bounded prose per label and a tie-break rule per
colliding label pair; code picks the examples, assembles the guide and verifies every item.

Prompts: prompts/guide.jinja (first attempt) and prompts/guide_repair.jinja (one repair after a
failed verification). Schemas bound every free-text field so a weak local model cannot run away.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from audit_agent.llm.base import BudgetExhausted, CallFailed, LLMClient

GUIDE_PROMPT = "guide"
REPAIR_PROMPT = "guide_repair"
MAX_DEFINITION_CHARS = 200
MAX_WHEN_CHARS = 160
# One worked example per prompt (guide.jinja), from a domain unlikely to be the user's, so a weak model
# sees the expected answer's shape; verification rejects answers that copy it.
LABEL_SHOT = {
    "label": "lost_luggage",
    "example": "My suitcase did not come out at the baggage belt after my flight from Lisbon.",
    "definition": "Messages saying a bag or suitcase did not arrive or went missing after a flight.",
    "not_this": "Questions about how many bags or how much weight a ticket allows.",
}
PAIR_SHOT = {
    "label_a": "lost_luggage", "label_b": "flight_delay",
    "example_a": "my bag never showed up", "example_b": "Why is flight 212 three hours late?",
    "winner": "lost_luggage", "when": "when a message says the flight was late and the bag is also missing",
}
EXAMPLE_WHEN = PAIR_SHOT["when"]
INSTRUCTION_PHRASES = ("one sentence", "what messages get", "what looks similar", "at most", "characters",
                       "starting with", "tie-break rule", "for example", "reply with json", "the label to use",
                       "define the label", "fits both")
LABEL_MAX_TOKENS = 150
PAIR_MAX_TOKENS = 90


class LabelText(BaseModel):
    """What the LLM writes for one label."""

    definition: str = Field(max_length=MAX_DEFINITION_CHARS + 40)
    not_this: str = Field(max_length=MAX_DEFINITION_CHARS + 40)


class PairRule(BaseModel):
    """What the LLM writes for one colliding label pair (winner is validated against the pair)."""

    winner: str
    when: str = Field(max_length=MAX_WHEN_CHARS + 40)


@lru_cache(maxsize=4096)
def pair_schema(label_a: str, label_b: str) -> type[PairRule]:
    """A PairRule whose `winner` may only be one of the two labels (an enum in the JSON schema, so a
    grammar-constrained model cannot name a third label)."""
    choice: Any = Literal[(label_a, label_b)]  # type: ignore[valid-type]
    model: type[PairRule] = create_model(  # type: ignore[call-overload]
        "PairRule", __base__=PairRule, winner=(choice, ...))
    return model


Reply = Any  # a validated schema object, or CallFailed / BudgetExhausted


def ask_label_texts(client: LLMClient, items: Sequence[Mapping[str, Any]], *,
                    repair: bool = False) -> list[LabelText | CallFailed | BudgetExhausted]:
    """One call per label: `items` hold the prompt variables (label, examples, neighbours, ...)."""
    prompt = REPAIR_PROMPT if repair else GUIDE_PROMPT
    variables = [{**v, "pair": False, "shot": LABEL_SHOT} for v in items]
    return client.structured_many(prompt, variables, LabelText, max_tokens=LABEL_MAX_TOKENS)


def ask_pair_rule(client: LLMClient, variables: Mapping[str, Any], *,
                  repair: bool = False) -> PairRule | CallFailed | BudgetExhausted:
    """One call for one pair (each pair has its own enum schema, so pairs are asked one by one)."""
    prompt = REPAIR_PROMPT if repair else GUIDE_PROMPT
    schema = pair_schema(str(variables["label_a"]), str(variables["label_b"]))
    try:
        return client.structured(prompt, {**variables, "pair": True, "shot": PAIR_SHOT}, schema,
                                 max_tokens=PAIR_MAX_TOKENS)
    except (CallFailed, BudgetExhausted) as exc:
        return exc


ItemStatus = Literal["verified", "repaired", "needs review"]


class LabelSection(BaseModel):
    """One label's part of the revised guide, as assembled by code."""

    label: str
    definition: str
    not_this: str
    examples: list[str] = Field(default_factory=list)
    example_ids: list[str] = Field(default_factory=list)
    status: ItemStatus = "verified"
    problems: list[str] = Field(default_factory=list)


class PairSection(BaseModel):
    """One colliding pair's tie-break rule, as assembled by code."""

    label_a: str
    label_b: str
    winner: str
    when: str
    sources: list[str] = Field(default_factory=list)
    status: ItemStatus = "verified"
    problems: list[str] = Field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return pair_key(self.label_a, self.label_b)

    @property
    def rule(self) -> str:
        """The rule as one sentence: 'When a message ..., label `x`.'"""
        when = self.when.strip().rstrip(".")
        when = when[0].upper() + when[1:] if when else when
        return f"{when}, label `{self.winner}`."


MindAction = Literal["add context", "move to a broader class", "drop", "apply tie-break rule"]


class MindReadingRow(BaseModel):
    """A row that cannot be labelled without guessing intent, with the action the guide prescribes."""

    id: str
    text: str
    labels: list[str]
    action: MindAction
    why: str


def pair_key(a: str, b: str) -> tuple[str, str]:
    """Order-free key of a label pair."""
    return (a, b) if a <= b else (b, a)
