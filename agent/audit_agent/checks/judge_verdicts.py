"""The kinds of finding the LLM judge produces (`jobs/judge.py` makes them, `verify/judge.py` checks
them). Declared here, beside the deterministic checks, so every kind of finding has one registry
entry: its description, recommendation and typed evidence. Nothing here calls a model."""

from __future__ import annotations

from pydantic import Field

from audit_agent.checks.base import FindingKind
from audit_agent.findings import Evidence, Finding, Record


class VerificationEvidence(Record):
    """What deterministic verification found for one verdict (see verify/judge.py)."""

    quote_found: bool
    quote_match: str
    quote_score: float
    quote_chars: int = 0
    quote_content_words: int = 0
    label_valid: bool
    oof_agrees: bool | None
    p_best: float | None
    p_given: float | None
    oof_rank_best: int | None = None
    """The proposed label's rank among the classifier's labels for the row (1 = its top label)."""
    oof_top: str | None
    oof_margin: float | None = None
    neighbour_labels_agree: bool
    neighbour_labels: list[str]
    conflict_group: bool
    knn_labels: list[str] = Field(default_factory=list)
    knn_majority: str | None = None
    backed_by: list[str] = Field(default_factory=list)
    """contradicted: the model-free signals backing the proposed label (classifier, neighbours,
    conflict_group); ambiguous: those backing the doubt (low_margin, neighbours_split, conflict_group)."""
    min_backing: int = 1
    judge_informative: bool | None = None
    """What the calibration (canaries and confident rows) said about this judge (None: not measured)."""
    failed_because: list[str]
    best_label_as_written: str | None = None


class JudgeEvidence(Evidence):
    """One judged row: the verdict as the model gave it, why the row was picked, and its verification."""

    verdict: str
    given_label: str
    best_label: str
    quote: str
    reason: str
    confidence: str
    verification: VerificationEvidence
    model: str
    picked_as: str
    picked_because: str
    round: int
    text_truncated: bool
    judge: str = "first"
    """Which answer the claim is: "first"; "second" when only the second judge flagged the row;
    "second_look" when it is the first judge's model asked again in the second framing."""
    other_verdict: str | None = None
    other_best_label: str | None = None
    """The other answer on the same row: the other judge's (two judges), or the other look's (a row
    with a second look)."""
    second_look: str | None = None
    """Why the row got a second look (quote_only, strong_suspect), when it got one."""


class _JudgeKind(FindingKind):
    Evidence = JudgeEvidence


class JudgeContradicted(_JudgeKind):
    name = "judge_contradicted"
    description = "Rows whose label the judge says the text contradicts (verified against deterministic signals)"
    recommendation = ("Check the verified rows by hand and fix their labels; the judge and a deterministic "
                      "signal both say the label is wrong.")


class JudgeAmbiguous(_JudgeKind):
    name = "judge_ambiguous"
    description = "Rows whose label cannot be read from the text alone (it needs mind reading)"
    recommendation = ("Give these rows context, move them to a broader class or drop them: the label cannot be "
                      "read from the text alone.")

    def mind_reading_rows(self, f: Finding) -> list[str]:
        return [str(r) for r in f.rows] if f.verified and f.split == "train" else []
