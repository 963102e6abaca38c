"""Meaning-level checks on sentence embeddings (features/semantic*.py; the `embed` extra):
paraphrases with different labels (`paraphrase_conflict`), real rows no training row is near in
meaning (`meaning_gap`), and same-label rows that say the same thing (`semantic_duplicate`, dropped
from deduplicated.<ext> only with `embeddings.semantic_dedup: true`). Without embeddings they are
skipped with the reason, and the lexical checks still run."""

from __future__ import annotations

from typing import Literal

import numpy as np

from audit_agent.checks.base import Check
from audit_agent.context import AuditContext
from audit_agent.findings import Evidence, Finding, Record, RowId, Severity

MAX_CONFLICT_FINDINGS = 300
MAX_DUPLICATE_FINDINGS = 200


class MeaningPair(Record):
    """Row `a`, whose label looks out of place, and a row `b` of another label close to it in meaning."""

    a: RowId
    b: RowId
    label_a: str
    label_b: str
    a_text: str
    b_text: str
    similarity: float
    margin: float
    p_other: float | None = None  # the out-of-fold classifier's probability that `a` has `b`'s label


class ParaphraseConflictEvidence(Evidence):
    size: int
    labels: dict[str, int]
    pairs: list[MeaningPair]
    label_pairs: list[tuple[str, str]]
    sampled_note: str | None = None


class UncoveredExample(Record):
    id: RowId
    text: str
    label: str | None
    nearest_train_id: RowId
    nearest_train_text: str
    similarity: float


class MeaningCluster(Evidence):
    """Real rows no training row is near in meaning, one cluster of them."""

    kind: Literal["cluster"]
    label: str | None
    size: int
    examples: list[UncoveredExample]


class MeaningSummary(Evidence):
    kind: Literal["summary"]
    real_rows: int
    uncovered: int
    threshold: float
    per_label_thresholds: dict[str, float]
    clusters: int
    separability_auc: float | None
    separability_auc_std: float | None
    sampled_note: str | None = None


class SemanticDuplicateEvidence(Evidence):
    label: str | None
    keep: RowId
    drop: list[RowId]
    similarity_min: float
    dropped_from_copy: bool
    sampled_note: str | None = None


def _text(ctx: AuditContext, split: str, rid: RowId) -> str:
    ds = {"train": ctx.train, "real": ctx.real, "eval": ctx.eval}[split]
    assert ds is not None
    frame = ds.frame
    hit = frame.loc[frame["id"].astype(str) == str(rid), "text"]
    return str(hit.iloc[0])[:300] if len(hit) else ""


def _classifier(ctx: AuditContext, positions: np.ndarray) -> tuple[np.ndarray | None, list[str] | None, str | None]:
    """The out-of-fold classifier's probabilities of the embedded training rows (shared with the label
    checks), or None with the reason when this run keeps only each row's predicted label (an engine)."""
    oof = ctx.features.oof
    if not isinstance(oof.probs, np.ndarray):
        return None, None, "pairs judged on meaning alone (the engine keeps no per-label probabilities)"
    return oof.probs[positions], list(oof.classes), None


class ParaphraseConflict(Check):
    """Groups of rows close in meaning (a row among another's nearest neighbours and well above its
    similarity to its own label, calibrated within the dataset) that carry different labels, where the
    out-of-fold text classifier does not rule out the other row's label for it."""

    name = "paraphrase_conflict"
    description = "Rows that say the same thing in other words but carry different labels"
    needs = ("labels", "classification", "two_labels", "embeddings")
    recommendation = ("Decide one label for each group of paraphrases with different labels (the first row of "
                      "each pair is the one out of place), then write the tie-break rule into the guide.")
    Evidence = ParaphraseConflictEvidence
    suspect_priority = 4
    label_in_doubt = True
    agreeing_verdicts = frozenset({"contradicted", "ambiguous"})

    def run(self, ctx: AuditContext) -> list[Finding]:
        from audit_agent.features.semantic import paraphrase_conflicts

        emb = ctx.features.embeddings
        assert emb is not None
        train = emb.train
        probs, classes, note = _classifier(ctx, train.positions)
        groups = paraphrase_conflicts(train.vectors, train.labels, train.ids, seed=ctx.config.seed, probs=probs,
                                      classes=classes)
        notes = "; ".join(n for n in (train.note, note) if n) or None
        findings = []
        for g in groups[:MAX_CONFLICT_FINDINGS]:
            pairs = [MeaningPair(a=p.a, b=p.b, label_a=p.label_a, label_b=p.label_b, a_text=_text(ctx, "train", p.a),
                                 b_text=_text(ctx, "train", p.b), similarity=p.similarity, margin=p.margin,
                                 p_other=p.p_other) for p in g.pairs[:20]]
            top = pairs[0]
            label_pairs = sorted({tuple(sorted((p.label_a, p.label_b))) for p in g.pairs})
            findings.append(Finding(
                check=self.name, severity=Severity.HIGH if top.margin >= 0.4 else Severity.MEDIUM,
                message=(f"{len(g.rows)} rows mean the same but carry {len(g.labels)} labels, e.g. \"{top.a_text[:60]}\" "
                         f"[{top.label_a}] vs \"{top.b_text[:60]}\" [{top.label_b}] (cosine {top.similarity:.2f})"),
                rows=list(g.rows), labels=list(g.labels),
                evidence=ParaphraseConflictEvidence(size=len(g.rows), labels=g.labels, pairs=pairs,
                                                    label_pairs=[(a, b) for a, b in label_pairs],
                                                    sampled_note=notes)))
        return findings

    def label_pairs(self, f: Finding) -> list[tuple[str, str]]:
        ev = self.evidence(f, ParaphraseConflictEvidence)
        return list(ev.label_pairs) if ev is not None else []

    def mind_reading_rows(self, f: Finding) -> list[str]:
        ev = self.evidence(f, ParaphraseConflictEvidence)
        return [str(p.a) for p in ev.pairs] if ev is not None and f.split == "train" else []

    def row_scores(self, f: Finding) -> dict[str, float]:
        ev = self.evidence(f, ParaphraseConflictEvidence)
        if ev is None:
            return super().row_scores(f)
        # only the rows whose label looks out of place: the others are the neighbours that agree with each
        # other (five or so per row in doubt), which would crowd the judge's plan without being in doubt
        return {str(p.a): 1.0 for p in ev.pairs}


class MeaningGap(Check):
    """Real rows with no training row near them in meaning (nearer than the training rows are to each
    other), grouped into a few clusters with examples, per label where the real batch is labelled;
    and how well a classifier tells train from real on embeddings."""

    name = "meaning_gap"
    description = "Real rows no training row is close to in meaning (the cases the data barely covers)"
    needs = ("real", "embeddings")
    recommendation = ("Generate training rows like the uncovered real ones (each cluster is a kind of request the "
                      "data barely has), or collect more real rows of those kinds.")
    Evidence = MeaningCluster | MeaningSummary

    def run(self, ctx: AuditContext) -> list[Finding]:
        from audit_agent.features.semantic_gap import embedding_separability, uncovered_real_rows

        emb = ctx.features.embeddings
        assert emb is not None
        train, real = emb.train, emb.split("real")
        if real is None or not len(real.ids) or not len(train.ids):
            return []
        cov = uncovered_real_rows(train.vectors, real.vectors, real.ids, train.ids, real_labels=real.labels,
                                  train_labels=train.labels, seed=ctx.config.seed)
        sep = embedding_separability(train.vectors, real.vectors, seed=ctx.config.seed)
        share = cov.uncovered / cov.real_rows if cov.real_rows else 0.0
        severity = Severity.HIGH if share >= 0.3 else Severity.MEDIUM if share >= 0.1 else \
            Severity.LOW if cov.uncovered else Severity.INFO
        findings = [Finding(
            check=self.name, severity=severity, split="real",
            message=(f"{cov.uncovered} of {cov.real_rows} real rows ({share:.0%}) have no training row near them in "
                     f"meaning, in {len(cov.clusters)} cluster(s)"
                     + (f"; a classifier tells train from real on meaning with AUC {sep.auc:.2f}" if sep else "")),
            rows=[r for c in cov.clusters for r in c.rows][:1000],
            evidence=MeaningSummary(kind="summary", real_rows=cov.real_rows, uncovered=cov.uncovered,
                                    threshold=round(cov.threshold, 4),
                                    per_label_thresholds={k: round(v, 4) for k, v in cov.per_label_thresholds.items()},
                                    clusters=len(cov.clusters), separability_auc=round(sep.auc, 4) if sep else None,
                                    separability_auc_std=round(sep.auc_std, 4) if sep else None,
                                    sampled_note=train.note, summary=True))]
        for c in cov.clusters:
            examples = [UncoveredExample(id=e.id, text=_text(ctx, "real", e.id), label=e.label,
                                         nearest_train_id=e.nearest_train_id,
                                         nearest_train_text=_text(ctx, "train", e.nearest_train_id),
                                         similarity=round(e.similarity, 4)) for e in c.examples[:5]]
            where = f" of label '{c.label}'" if c.label else ""
            findings.append(Finding(
                check=self.name, severity=Severity.MEDIUM if c.size >= 3 else Severity.LOW, split="real",
                message=f"{c.size} real rows{where} not covered in meaning, e.g. \"{examples[0].text[:80]}\""
                if examples else f"{c.size} real rows{where} not covered in meaning",
                rows=list(c.rows), labels=[c.label] if c.label else [],
                evidence=MeaningCluster(kind="cluster", label=c.label, size=c.size, examples=examples)))
        return findings

    def subject(self, f: Finding) -> str | None:
        ev = self.evidence(f, MeaningCluster)
        return f"uncovered: {ev.label}" if ev is not None else "summary"


class SemanticDuplicate(Check):
    """Same-label rows that say the same thing in other words (cosine >= embeddings.semantic_dedup_threshold).
    Often legitimate variety, so they leave deduplicated.<ext> only with embeddings.semantic_dedup."""

    name = "semantic_duplicate"
    description = "Same-label rows that say the same thing in other words (meaning-level duplicates)"
    needs = ("embeddings",)
    recommendation = ("Thin out the groups of rows that say the same thing (set embeddings.semantic_dedup: true to "
                      "drop them from the deduplicated copy), or keep them if they are wanted variety.")
    Evidence = SemanticDuplicateEvidence

    def run(self, ctx: AuditContext) -> list[Finding]:
        from audit_agent.features.semantic import semantic_duplicates

        emb = ctx.features.embeddings
        assert emb is not None
        train, cfg = emb.train, ctx.config.embeddings
        groups = semantic_duplicates(train.vectors, train.labels, train.ids, threshold=cfg.semantic_dedup_threshold,
                                     seed=ctx.config.seed)
        return [Finding(
            check=self.name, severity=Severity.LOW,
            message=f"{len(g.drop) + 1} rows{f' of label {g.label!r}' if g.label else ''} say the same thing "
                    f"(cosine >= {g.similarity_min:.2f})",
            rows=[g.keep, *g.drop], labels=[g.label] if g.label else [],
            evidence=SemanticDuplicateEvidence(label=g.label, keep=g.keep, drop=list(g.drop),
                                               similarity_min=round(g.similarity_min, 4),
                                               dropped_from_copy=cfg.semantic_dedup, sampled_note=train.note))
            for g in groups[:MAX_DUPLICATE_FINDINGS]]

    def drop_rows(self, f: Finding) -> list[str]:
        ev = self.evidence(f, SemanticDuplicateEvidence)
        return [str(r) for r in ev.drop] if ev is not None and ev.dropped_from_copy and f.split == "train" else []
