"""`pilot_gap`: a tiny pilot tune that predicts how well a model trained on this data will do on
the data it is meant for. The same fast linear text classifier is fitted on 80% of the training
rows and scored on the held-out 20%, on labelled --eval rows and on labelled --real rows (at most
15,000 fitted and 20,000 held-out rows: uniform samples that keep every label). A large drop from
held-out to real means the training data does not look like the real traffic.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

from audit_agent.checks.base import Check
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.features.classifier import LARGE_ROWS, MAX_TRAIN_ROWS, TextClassifier
from audit_agent.findings import Evidence, Finding, Record, Severity

HELD_OUT_SHARE = 0.2
GAP_MEDIUM = 0.05
MIN_PER_LABEL = 5
MAX_PER_LABEL_ROWS = 50
MAX_HELD_OUT_ROWS = 20_000


def _score(model: TextClassifier, texts: list[str], truth: list[str]) -> dict[str, Any]:
    pred = model.predict(texts)
    labels = sorted(set(truth))
    acc = float(np.mean([p == t for p, t in zip(pred, truth, strict=True)]))
    f1 = float(f1_score(truth, pred, labels=labels, average="macro", zero_division=0))
    return {"n": len(truth), "accuracy": round(acc, 4), "macro_f1": round(f1, 4), "_pred": pred}


def _sample(texts: list[str], labels: list[str], cap: int,
            rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """At most `cap` rows, a uniform sample that keeps at least one row of every label."""
    if len(labels) <= cap:
        return texts, labels
    keep = rng.random(len(labels)) < cap / len(labels)
    keep[np.unique(np.asarray(labels, dtype=object), return_index=True)[1]] = True
    idx = np.flatnonzero(keep)
    return [texts[i] for i in idx], [labels[i] for i in idx]


def _labelled(ds: Dataset | None, known: set[str]) -> tuple[list[str], list[str], int]:
    """Texts and labels of rows whose label the training set knows; and how many labelled rows."""
    if ds is None or not ds.has_labels:
        return [], [], 0
    fr = ds.frame[ds.frame["label"].notna()]
    keep = fr["label"].astype(str).isin(known)
    return fr.loc[keep, "text"].tolist(), fr.loc[keep, "label"].astype(str).tolist(), len(fr)


def _encoder_pilot(ctx: AuditContext) -> EncoderPilotScores | None:
    """The pilot on frozen sentence embeddings, scored on held-out train, eval and real (None without
    embeddings)."""
    emb = ctx.features.embeddings if ctx.features.embeddings_skipped is None else None
    if emb is None:
        return None
    from audit_agent.features.semantic_gap import encoder_pilot

    sets = {name: (split.vectors, split.labels) for name in ("eval", "real")
            if (split := emb.split(name)) is not None and len(split.ids)}
    result = encoder_pilot(emb.train.vectors, emb.train.labels, sets, seed=ctx.config.seed)
    if result is None:
        return None
    return EncoderPilotScores(model=result.model, fitted_rows=result.fitted_rows, sets={
        k: PilotScore(n=v.n, accuracy=v.accuracy, macro_f1=v.macro_f1) for k, v in result.scores.items()})


def _pilot_gap(ctx: AuditContext) -> list[Finding]:
    """One finding: accuracy/macro-F1 on held-out train, eval and real; the held-out-minus-real gap."""
    fr = ctx.train.frame[ctx.train.frame["label"].notna()]
    texts, labels = fr["text"].tolist(), fr["label"].astype(str).tolist()
    known = set(labels)
    sets = {"eval": _labelled(ctx.eval, known), "real": _labelled(ctx.real, known)}
    if not any(t for t, _, _ in sets.values()) or len(known) < 2:
        return []
    counts = fr["label"].astype(str).value_counts()
    stratify = labels if counts.min() >= 2 and len(labels) * HELD_OUT_SHARE >= len(known) else None
    tr_x, ho_x, tr_y, ho_y = train_test_split(texts, labels, test_size=HELD_OUT_SHARE,
                                              random_state=ctx.config.seed, stratify=stratify)
    if len(set(tr_y)) < 2:
        return []
    all_train_rows = len(tr_y)
    rng = np.random.default_rng(ctx.config.seed)
    tr_x, tr_y = _sample(tr_x, tr_y, MAX_TRAIN_ROWS, rng)
    ho_x, ho_y = _sample(ho_x, ho_y, MAX_HELD_OUT_ROWS, rng)
    model = TextClassifier(seed=ctx.config.seed, large=all_train_rows > LARGE_ROWS).fit(tr_x, tr_y)
    results: dict[str, dict[str, Any]] = {"held_out": _score(model, ho_x, ho_y)}
    for name, (x, y, n_lab) in sets.items():
        if x:
            results[name] = _score(model, x, y) | {"labelled_rows": n_lab, "scoreable_rows": len(y)}
    target = "real" if "real" in results else "eval"
    gap = results["held_out"]["accuracy"] - results[target]["accuracy"]
    severity = Severity.HIGH if gap > ctx.config.checks.pilot_gap_high else Severity.MEDIUM if gap > GAP_MEDIUM else Severity.INFO
    per_label: dict[str, dict[str, Any]] = {}
    if target in results:
        truth = sets[target][1]
        pred = results[target]["_pred"]
        for lab in sorted(set(truth)):
            hits = [p == t for p, t in zip(pred, truth, strict=True) if t == lab]
            if len(hits) >= MIN_PER_LABEL:
                per_label[lab] = {"n": len(hits), "accuracy": round(float(np.mean(hits)), 4)}
        worst = sorted(per_label.items(), key=lambda kv: (kv[1]["accuracy"], kv[0]))[:MAX_PER_LABEL_ROWS]
        per_label = dict(worst)
    for res in results.values():
        res.pop("_pred", None)
    parts = [f"{name} acc {r['accuracy']:.2f} / macro-F1 {r['macro_f1']:.2f} (n={r['n']})"
             for name, r in results.items()]
    msg = (f"pilot model: held-out minus {target} accuracy gap {gap:+.2f}; " + "; ".join(parts))
    if target in results and "scoreable_rows" in results[target]:
        msg += (f"; {results[target]['scoreable_rows']} of {results[target]['labelled_rows']} labelled "
                f"{target} rows have a label the training set knows")
    encoder = _encoder_pilot(ctx)
    if encoder is not None and target in encoder.sets and "held_out" in encoder.sets:
        enc_gap = encoder.sets["held_out"].accuracy - encoder.sets[target].accuracy
        msg += (f"; encoder pilot (frozen sentence embeddings): held-out acc {encoder.sets['held_out'].accuracy:.2f}, "
                f"{target} {encoder.sets[target].accuracy:.2f} (gap {enc_gap:+.2f})")
    return [Finding(
        check="pilot_gap", severity=severity, message=msg, split=target,  # type: ignore[arg-type]
        labels=list(per_label)[:20],
        evidence={"gap": round(gap, 4), "gap_against": target, "sets": results,
                  "per_label_accuracy": per_label, "train_rows": all_train_rows,
                  "fitted_rows": len(tr_y),
                  "held_out_share": HELD_OUT_SHARE, "model": ("hashed tf-idf word+char, SGD linear SVM" if all_train_rows > LARGE_ROWS
                            else "tf-idf word+char, linear SVM"),
                  "encoder": encoder,
                  "encoder_skipped": None if encoder is not None else ctx.features.embeddings_skipped},
    )]


class PilotScore(Record):
    """One scored set of the pilot model."""

    n: int
    accuracy: float
    macro_f1: float
    labelled_rows: int | None = None
    scoreable_rows: int | None = None


class LabelAccuracy(Record):
    n: int
    accuracy: float


class EncoderPilotScores(Record):
    """The same pilot on frozen sentence embeddings (closer to what a tuned small model learns)."""

    model: str
    fitted_rows: int
    sets: dict[str, PilotScore]


class PilotGapEvidence(Evidence):
    gap: float
    gap_against: str
    sets: dict[str, PilotScore]
    per_label_accuracy: dict[str, LabelAccuracy]
    train_rows: int
    fitted_rows: int
    held_out_share: float
    model: str
    encoder: EncoderPilotScores | None = None
    encoder_skipped: str | None = None

class PilotGap(Check):
    """One finding: accuracy/macro-F1 on held-out train, eval and real; the held-out-minus-real gap."""

    name = "pilot_gap"
    description = "Pilot tune: held-out accuracy vs accuracy on labelled eval/real rows"
    needs = ("labels", "classification", "two_labels")
    recommendation = ("Do not trust the clean test score: the pilot model does worse on real messages. Close the "
                      "style gap (coverage_gap, real_gap) and score the tuned model on real rows.")
    Evidence = PilotGapEvidence

    def run(self, ctx: AuditContext) -> list[Finding]:
        return _pilot_gap(ctx)

    def subject(self, f: Finding) -> str | None:
        ev = self.evidence(f, PilotGapEvidence)
        return f"gap against {ev.gap_against}" if ev is not None else None
