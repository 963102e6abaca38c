"""What a kind of finding is, in one place: `FindingKind` (every finding's `check` name, including the
judge's) and `Check` (a kind the deterministic audit computes: a pure function of the loaded data).

A subclass that sets `name` registers itself; everything the rest of the package needs to know about
it is a class attribute or method here, so adding a check is one new module (see
docs/architecture.md):

- `name`, `description`, `recommendation` (what to do when it fires; the report shows it verbatim,
  `{dedup_file}` is replaced by the deduplicated file's name);
- `Evidence`: the pydantic model (or union of models) of its findings' evidence;
- `suspect_priority`: its training rows are label suspects for the judge, with this priority
  (higher first; None = not suspects); `label_in_doubt`: the rows it names may carry a wrong label
  (jobs leave them out of examples and rewrites); `agreeing_verdicts`: judge verdicts that agree;
- `label_pairs(f)`, `frames(f)`, `drop_rows(f)`, `row_scores(f)`: what other parts read from a
  finding, so nobody else guesses evidence keys;
- for a `Check`: `needs` (what the run must have) and `run(ctx)`.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from audit_agent.findings import Evidence, Finding, register_evidence

if TYPE_CHECKING:
    from audit_agent.context import AuditContext

Need = Literal["eval", "real", "real_labels", "labels", "two_labels", "classification", "embeddings"]
E = TypeVar("E", bound=Evidence)

KINDS: dict[str, FindingKind] = {}
"""Every registered kind of finding by name (checks and job-made kinds alike)."""
REGISTRY: dict[str, Check] = {}
"""The deterministic checks by name (a subset of KINDS)."""

SEVERITY_SCORE = {"high": 1.0, "medium": 2 / 3, "low": 1 / 3, "info": 0.0}
"""Per-row score a finding gives each of its rows unless its kind says otherwise (higher = worse)."""


class FindingKind:
    """One kind of finding and everything the package knows about it."""

    name: ClassVar[str]
    description: ClassVar[str]
    recommendation: ClassVar[str] = "Review the rows listed under this check in findings.jsonl."
    Evidence: ClassVar[Any] = Evidence
    suspect_priority: ClassVar[int | None] = None
    label_in_doubt: ClassVar[bool] = False
    agreeing_verdicts: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            return  # an abstract family base
        for attr in ("description", "Evidence"):
            if attr not in cls.__dict__ and not any(attr in b.__dict__ for b in cls.__mro__[1:-1]
                                                    if b is not FindingKind):
                raise TypeError(f"{cls.__name__}: a finding kind must set `{attr}`")
        if cls.name in KINDS:
            raise ValueError(f"finding kind '{cls.name}' registered twice")
        instance = cls()
        KINDS[cls.name] = instance
        if isinstance(instance, Check):
            REGISTRY[cls.name] = instance
        register_evidence(cls.name, cls.Evidence)

    @property
    def is_label_suspect(self) -> bool:
        """Whether rows named by this kind have a label in doubt."""
        return self.suspect_priority is not None

    def evidence(self, f: Finding, model: type[E]) -> E | None:
        """`f.evidence` when it is a `model` (one variant of a union), else None."""
        return f.evidence if isinstance(f.evidence, model) else None

    def label_pairs(self, f: Finding) -> list[tuple[str, str]]:
        """Label pairs this finding says collide (none unless the kind says so)."""
        return []

    def frames(self, f: Finding) -> list[str]:
        """Template frames this finding names (none unless the kind says so)."""
        return []

    def mind_reading_rows(self, f: Finding) -> list[str]:
        """Training row ids whose label cannot be read from the text alone, per this finding."""
        return []

    def drop_rows(self, f: Finding) -> list[str]:
        """Training row ids the deduplicated copy leaves out because of this finding."""
        return []

    def subject(self, f: Finding) -> str | None:
        """What the finding is about, in words that survive a new version of the data (a phrase, a
        frame, a label pair; "summary" for a check's totals), so two audits' findings can be matched;
        None when only its rows say it."""
        return "summary" if f.evidence.summary else None

    def row_scores(self, f: Finding) -> dict[str, float]:
        """Row id -> score in [0, 1] (higher = worse) for the per-row issue table."""
        score = SEVERITY_SCORE[f.severity.value]
        return {str(r): score for r in f.rows}


class Check(FindingKind):
    """A deterministic check: a pure function from the loaded data to findings. It never calls a
    model, writes a file or prints."""

    needs: ClassVar[tuple[Need, ...]] = ()

    @abstractmethod
    def run(self, ctx: AuditContext) -> list[Finding]:
        """The findings on `ctx` (an empty list when there is nothing to report)."""

    def missing(self, ctx: AuditContext) -> str | None:
        """Why this check cannot run on `ctx`, or None when it can."""
        for need in self.needs:
            reason = _missing(need, ctx)
            if reason is not None:
                return reason
        return None


def _missing(need: Need, ctx: AuditContext) -> str | None:
    if need == "eval" and ctx.eval is None:
        return "needs --eval"
    if need == "real" and ctx.real is None:
        return "needs --real"
    if need == "real_labels" and (ctx.real is None or not ctx.real.has_labels):
        return "needs labelled --real rows"
    if need == "labels" and not ctx.train.has_labels:
        return "needs a label column"
    if need == "classification" and ctx.train.kind != "classification":
        return "needs class labels (this data has target texts)"
    if need == "embeddings" and ctx.features.embeddings_skipped is not None:
        return f"needs meaning-level signals: {ctx.features.embeddings_skipped}"
    if need == "two_labels" and ctx.train.kind == "classification" and len(ctx.train.label_set) < 2:
        return f"needs two or more labels (this file has only '{ctx.train.label_set[0]}')" \
            if ctx.train.label_set else "needs two or more labels"
    return None
