"""The typed result of `audit-agent stress`: every clean row and variant, a score per variant kind,
the worst failures. Rendered by report/stress_outputs.py (stress.md, stress.json)."""

from __future__ import annotations

from pydantic import BaseModel, Field

DROP_REASONS = {
    "unchanged": "the rewrite left the text as it was (it already had this trait)",
    "ambiguous": "the same text is also a row or variant of another label (e.g. two rows shortened to the "
                 "same words), so no answer can be right for both",
    "no_trait": "the rewrite does not show the trait by the style features (e.g. a typo that spelled another "
                "real word, a request phrase left in an indirect rewrite)",
    "label_changed": "the checker classifier confirms the clean row's label but not the variant's: its "
                     "meaning changed",
    "label_unverifiable": "the checker classifier does not confirm the clean row's label either, so the "
                          "variant cannot be verified",
}


class Variant(BaseModel):
    """One text the model is scored on: a clean row (kind "clean") or one of its messy variants."""

    row_id: str
    kind: str
    label: str
    text: str
    kept: bool = True
    reason: str | None = None
    checker_label: str | None = None
    checker_p: float | None = Field(None, description="the checker's probability of the row's label")
    predicted: str | None = Field(None, description="the model's answer as given (None: no answer)")
    correct: bool | None = Field(None, description="None when not scored (dropped or unanswered)")
    error: str | None = None


class KindScore(BaseModel):
    """Accuracy on one variant kind and the drop from the same rows' clean texts."""

    kind: str
    made: int
    kept: int
    dropped: dict[str, int]
    scored: int
    unanswered: int
    correct: int
    accuracy: float | None
    clean_accuracy: float | None = Field(None, description="accuracy on the clean texts of the same rows")
    drop: float | None = Field(None, description="clean_accuracy - accuracy over rows with both answered")
    unknown_labels: int = 0


class Failure(BaseModel):
    """A variant the model got wrong although it got the row's clean text right."""

    kind: str
    row_id: str
    label: str
    predicted: str
    clean_text: str
    text: str
    checker_p: float | None


class StressResult(BaseModel):
    """What `stress` measured (stress.json holds it whole)."""

    model: str
    checker: str
    rows: int
    labels: list[str]
    kinds: list[str]
    clean: KindScore
    per_kind: list[KindScore]
    failures: list[Failure]
    unknown_predictions: dict[str, int] = Field(default_factory=dict)
    usage: dict[str, float] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    variants: list[Variant] = Field(default_factory=list)

    def score(self, kind: str) -> KindScore:
        """The score of `kind` ("clean" or a variant kind)."""
        if kind == "clean":
            return self.clean
        for s in self.per_kind:
            if s.kind == kind:
                return s
        raise KeyError(kind)
