"""The one `Finding` type every check and job produces and the report renders, with typed evidence.

Each kind of finding (a check's name, or a job's such as `judge_contradicted`) declares its evidence
model, a subclass of `Evidence`, in one place (`checks/base.py: FindingKind.Evidence`). A finding's
`evidence` is validated into that model when the finding is built (from keyword arguments, a dict or
a findings.jsonl line), so a misspelt or missing key fails where it is written, not where it is read.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, TypeAdapter, model_validator


class Severity(StrEnum):
    """How much a finding matters before tuning; ordered high > medium > low > info."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"high": 3, "medium": 2, "low": 1, "info": 0}[self.value]


RowId = str | int
Split = Literal["train", "eval", "real"]
Source = Literal["check", "judge", "guide", "paraphrase"]


class _Typed(BaseModel):
    """Strict: unknown keys are refused. `x["name"]` reads field `name` and raises KeyError for a name
    the model does not have (no silent fallback, unlike a dict's `get`)."""

    model_config = ConfigDict(extra="forbid")

    def __contains__(self, name: object) -> bool:
        return name in type(self).model_fields

    def __getitem__(self, name: str) -> Any:
        if name not in type(self).model_fields:
            raise KeyError(f"{type(self).__name__} has no field '{name}'")
        return getattr(self, name)


class Record(_Typed):
    """Base of the typed items inside evidence (a row shown as an example, a pair, ...)."""


class RowRef(Record):
    """A row shown as an example: its id, (clipped) text and label."""

    id: RowId
    text: str | None = None
    label: str | None = None
    copies: int | None = None


class Evidence(_Typed):
    """Base of every evidence model: the numbers and examples behind a finding's message.

    `summary` marks a finding that totals a check's other findings (it is not listed as a top finding).
    A finding built with no evidence at all keeps this bare base; one with any evidence must match
    its kind's model."""

    summary: bool = False


EvidenceParser = Callable[[Any], Evidence]
_EVIDENCE: dict[str, EvidenceParser] = {}


def register_evidence(kind: str, model: Any) -> None:
    """Declare the evidence model (a class or a union of classes) of findings of `kind`."""
    adapter: TypeAdapter[Any] = TypeAdapter(model)
    _EVIDENCE[kind] = adapter.validate_python


def evidence_parser(kind: str) -> EvidenceParser:
    """The evidence validator of `kind`; loads the registered kinds on first use."""
    if kind not in _EVIDENCE:
        importlib.import_module("audit_agent.checks")  # registers every kind on first import
    try:
        return _EVIDENCE[kind]
    except KeyError:
        raise ValueError(f"unknown finding kind '{kind}' (no evidence model registered)") from None


class Finding(BaseModel):
    """One problem (or fact) about the data, traceable to the check or judgement that produced it.

    `rows` holds row ids: the `--id-col` value, else the 0-based data row position in the input file.
    `evidence` holds the numbers and examples behind the message, so the report never states
    anything the finding does not carry.
    """

    id: str = ""
    check: str
    severity: Severity
    message: str
    rows: list[RowId] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    evidence: SerializeAsAny[Evidence] = Field(default_factory=Evidence)
    source: Source = "check"
    verified: bool = True
    split: Split = "train"

    @model_validator(mode="before")
    @classmethod
    def _typed_evidence(cls, data: Any) -> Any:
        if isinstance(data, dict) and "check" in data:
            parse = evidence_parser(str(data["check"]))  # an unknown kind is an error
            raw = data.get("evidence")
            if isinstance(raw, Evidence) and type(raw) is Evidence:
                raw = raw.model_dump(exclude_defaults=True)
            if raw is None or raw == {} or raw == {"summary": False}:
                return {**data, "evidence": Evidence()}  # no evidence at all (hand-made findings)
            data = {**data, "evidence": parse(raw)}
        return data

    def model_post_init(self, __context: Any) -> None:
        if not self.id:
            self.id = self.stable_id()

    def stable_id(self) -> str:
        """A short id that stays the same across reruns on the same data."""
        key = json.dumps(
            [self.check, self.split, [str(r) for r in self.rows[:50]], self.labels, self.message],
            sort_keys=True,
            default=str,
        )
        return f"{self.check}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Most severe first, then by check name and by how many rows a finding covers."""
    return sorted(findings, key=lambda f: (-f.severity.rank, f.check, -len(f.rows), f.id))
