"""The paraphrase job's settings (`ParaphraseSettings`) and its row selection: over-polished rows
(style polish score, boosted by template and coverage findings), skipping rows whose label is in
doubt, spread evenly over labels; and a few real rows to show the target style."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from audit_agent.checks import KINDS, FindingKind
from audit_agent.checks.coverage import CoverageGap
from audit_agent.checks.real_gap import RealGap
from audit_agent.context import AuditContext
from audit_agent.findings import Finding
from audit_agent.tasks.messify import StyleTargets
from audit_agent.verify.paraphrase import VerifySettings


@dataclass
class ParaphraseSettings:
    """Knobs of the paraphrase job (CLI: --per-row, --max-rows; the rest are defaults)."""

    min_polish: float = 0.6
    finding_boost: float = 0.15
    real_examples: int = 3
    judge: bool = False
    messify: bool = True  # apply the real-style surface transforms to the LLM's text
    rule_fallback: bool = True  # a rule-only candidate for each slot whose LLM candidate failed
    targets: StyleTargets | None = None  # surface-style shares; None = measured on --real, else defaults
    verify: VerifySettings = field(default_factory=VerifySettings)


def style_frame_of(ctx: AuditContext, split: str = "train") -> pd.DataFrame:
    try:
        return ctx.features.style(split)
    except ImportError:  # pragma: no cover - features/style.py ships with the package
        return pd.DataFrame({"polish": np.full(len(getattr(ctx, split).frame), 0.5)})


def _rows_where(findings: Sequence[Finding], named: Callable[[FindingKind, Finding], bool]) -> set[str]:
    """Training row ids named by the findings for which `named(kind, finding)` holds."""
    out: set[str] = set()
    for f in findings:
        kind = KINDS.get(f.check)
        if kind is not None and f.split == "train" and named(kind, f):
            out.update(str(r) for r in f.rows)
    return out


def template_frames(findings: Sequence[Finding]) -> list[str]:
    """Frame strings the findings name (`FindingKind.frames`: the template_frame check's)."""
    return sorted({frame for f in findings if f.check in KINDS for frame in KINDS[f.check].frames(f)})


def select_rows(ctx: AuditContext, findings: Sequence[Finding], max_rows: int,
                settings: ParaphraseSettings) -> pd.DataFrame:
    """Over-polished rows to rewrite: score = polish (+ boosts for rows in template or gap findings);
    rows at or above `min_polish`, with a label not in doubt and a distinct text, taken round-robin
    over labels (each label's highest scores first) up to `max_rows`."""
    frame = ctx.train.frame
    style = style_frame_of(ctx)
    ids = frame["id"].astype(str)
    templ = _rows_where(findings, lambda kind, f: bool(kind.frames(f)))
    gap = _rows_where(findings, lambda kind, _: kind.name in (CoverageGap.name, RealGap.name))
    doubtful = _rows_where(findings, lambda kind, _: kind.label_in_doubt)
    in_templ, in_gap = ids.isin(templ).to_numpy(), ids.isin(gap).to_numpy()
    score = style["polish"].to_numpy() + settings.finding_boost * (in_templ.astype(float) + in_gap)
    table = pd.DataFrame({"id": ids.to_numpy(), "text": frame["text"].to_numpy(), "label": frame["label"].to_numpy(),
                          "polish": style["polish"].to_numpy(), "score": score,
                          "in_template": in_templ, "in_gap": in_gap})
    keep = table["label"].notna() & ~table["id"].isin(doubtful) & (table["score"] >= settings.min_polish)
    keep &= ~pd.Series(ctx.features.normalized).duplicated().to_numpy()
    try:
        oof = ctx.features.oof
        predicted = np.asarray(oof.classes, dtype=object)[oof.probs.argmax(axis=1)]
        keep &= predicted == table["label"].astype(str).to_numpy()
    except (ImportError, ValueError, AttributeError):
        pass
    pool = table[keep].sort_values(["score", "id"], ascending=[False, True], kind="stable")
    pool = pool.assign(_rank=pool.groupby("label").cumcount())
    picked = pool.sort_values(["_rank", "score", "id"], ascending=[True, False, True], kind="stable").head(max_rows)
    return picked.drop(columns=["_rank"]).reset_index(drop=True)


def real_examples(ctx: AuditContext, label: str, n: int, seed: int) -> list[str]:
    """A few short real rows (same label when the real batch has labels) to show the target style."""
    if ctx.real is None or n <= 0:
        return []
    real = ctx.real.frame
    pool = real
    if ctx.real.has_labels:
        same = real[real["label"] == label]
        if len(same) >= n:
            pool = same
    pool = pool[pool["text"].str.len() <= 120]
    if pool.empty:
        return []
    rng = np.random.default_rng(seed)
    take = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
    return [str(t) for t in pool["text"].iloc[np.sort(take)]]
