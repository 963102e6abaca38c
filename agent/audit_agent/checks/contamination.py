"""Train/eval contamination: eval rows that are exact or near duplicates of training rows
(`contamination`), and, as information, real rows already present in the training set
(`real_in_train`)."""

from __future__ import annotations

from typing import Any

from audit_agent.checks.base import Check
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.features.text import normalize
from audit_agent.findings import Evidence, Finding, Record, RowId, Severity

MAX_PAIRS = 50
MAX_ROW_IDS = 1000
MAX_TEXT_CHARS = 300
HIGH_SHARE = 0.01  # more than this share of eval rows seen in training is severe


class OverlapPair(Record):
    """One row of the other split next to the training row it duplicates."""

    id: RowId
    text: str | None
    label: str | None
    train_id: RowId
    train_text: str | None
    train_label: str | None
    similarity: float
    identical: bool
    train_matches: int


class OverlapEvidence(Evidence):
    split: str
    matched: int
    total: int
    share: float
    exact: int
    near: int
    threshold: float
    pairs_shown: int
    pairs: list[OverlapPair]


def _clip(value: Any) -> Any:
    if value is None or value != value:
        return None
    text = str(value)
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + "…"


def _overlap(ctx: AuditContext, other: Dataset) -> tuple[list[int], list[dict[str, Any]], int]:
    """Positions of `other` rows that duplicate a training row, evidence pairs (capped), exact count."""
    other_normalized = [normalize(t) for t in other.texts]
    matches = ctx.features.neighbors.query(other_normalized)
    train_normalized = ctx.features.normalized
    train = ctx.train.frame
    train_ids, train_texts = train["id"].to_numpy(dtype=object), train["text"].to_numpy(dtype=object)
    train_labels = train["label"].to_numpy(dtype=object) if ctx.train.has_labels else None
    ids, texts = other.frame["id"].to_numpy(dtype=object), other.frame["text"].to_numpy(dtype=object)
    labels = other.frame["label"].to_numpy(dtype=object) if other.has_labels else None
    hits = [i for i, found in enumerate(matches) if found]
    exact = sum(1 for i in hits if other_normalized[i] == train_normalized[matches[i][0][0]])
    ranked = sorted(hits, key=lambda i: (-matches[i][0][1], i))
    pairs = []
    for i in ranked[:MAX_PAIRS]:
        pos, sim = matches[i][0]
        pairs.append({
            "id": ids[i], "text": _clip(texts[i]), "label": None if labels is None else _clip(labels[i]),
            "train_id": train_ids[pos], "train_text": _clip(train_texts[pos]),
            "train_label": None if train_labels is None else _clip(train_labels[pos]),
            "similarity": round(float(sim), 4), "identical": other_normalized[i] == train_normalized[pos],
            "train_matches": len(matches[i]),
        })
    return hits, pairs, exact


def _finding(ctx: AuditContext, ds: Dataset, split: str) -> list[Finding]:
    hits, pairs, exact = _overlap(ctx, ds)
    if not hits:
        return []
    share = len(hits) / len(ds)
    ids = ds.frame["id"].to_numpy(dtype=object)
    if split == "eval":
        check_name = "contamination"
        severity = Severity.HIGH if share > HIGH_SHARE else Severity.MEDIUM
        message = (f"{len(hits)} of {len(ds)} eval rows ({share:.1%}) duplicate training rows "
                   f"({exact} exactly, {len(hits) - exact} nearly): eval scores will be inflated")
    else:
        check_name = "real_in_train"
        severity = Severity.INFO
        message = (f"{len(hits)} of {len(ds)} real rows ({share:.1%}) already appear in the training data "
                   f"({exact} exactly, {len(hits) - exact} nearly)")
    return [Finding(
        check=check_name, severity=severity, split=split,  # type: ignore[arg-type]
        message=message, rows=[ids[i] for i in hits[:MAX_ROW_IDS]],
        evidence={"split": split, "matched": len(hits), "total": len(ds), "share": round(share, 6),
                  "exact": exact, "near": len(hits) - exact,
                  "threshold": ctx.config.checks.near_duplicate_threshold,
                  "pairs_shown": len(pairs), "pairs": pairs},
    )]


class Contamination(Check):
    """One finding listing the eval rows found (exactly or nearly) in the training set."""

    name = "contamination"
    description = "Eval rows that (nearly) duplicate training rows"
    needs = ("eval",)
    recommendation = "Remove the eval rows that copy training rows, or the score on eval will be too high."
    Evidence = OverlapEvidence

    def run(self, ctx: AuditContext) -> list[Finding]:
        assert ctx.eval is not None
        return _finding(ctx, ctx.eval, "eval") if len(ctx.eval) else []

    def subject(self, f: Finding) -> str | None:
        return f"{f.split} rows in train"


class RealInTrain(Check):
    """Real rows that (nearly) duplicate training rows: fine, but worth knowing."""

    name = "real_in_train"
    description = "Real rows already present in the training set (info)"
    needs = ("real",)
    recommendation = ("Real rows already in the training set are fine for training, but never use them to "
                      "measure the model.")
    Evidence = OverlapEvidence

    def run(self, ctx: AuditContext) -> list[Finding]:
        assert ctx.real is not None
        return _finding(ctx, ctx.real, "real") if len(ctx.real) else []

    def subject(self, f: Finding) -> str | None:
        return f"{f.split} rows in train"
