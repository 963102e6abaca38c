"""The one `Finding` type every check, judge task and verifier produces, and the report renders."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field


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
    evidence: dict[str, Any] = Field(default_factory=dict)
    source: Literal["check", "judge", "guide", "paraphrase"] = "check"
    verified: bool = True
    split: Literal["train", "eval", "real"] = "train"

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
