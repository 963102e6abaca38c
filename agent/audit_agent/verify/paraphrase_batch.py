"""Runs every paraphrase rule (verify/paraphrase.py) over batches of candidate records: fits the
label classifier once, looks up near duplicates among existing rows and earlier candidates, and
records each candidate's style numbers, passed and failed rules and reason."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from audit_agent.context import AuditContext
from audit_agent.features.text import normalize
from audit_agent.llm.base import LLMClient
from audit_agent.tasks.paraphrase import LabelCheck, ask_label_checks, label_words
from audit_agent.verify.paraphrase import (
    VerifySettings,
    check_judge,
    check_keeps_label,
    check_messier,
    check_no_template_frame,
    check_not_near,
    check_not_near_existing,
    check_well_formed,
)

if TYPE_CHECKING:
    from audit_agent.features.classifier import TextClassifier

MAX_CLASSIFIER_ROWS = 10_000  # rows the keeps_label classifier is fitted on (evenly per label)


def style_of(texts: Sequence[str], labels: Sequence[str]) -> pd.DataFrame:
    """Style measurements of new texts, with label words counted as correctly spelled."""
    from audit_agent.features.style import label_words as style_label_words
    from audit_agent.features.style import style_frame

    return style_frame(list(texts), extra_words=style_label_words(labels))


def _label_model(ctx: AuditContext) -> TextClassifier:
    """The out-of-fold run's classifier, fitted on (a stratified sample of) all labelled rows, with the
    temperature the out-of-fold run fitted."""
    from audit_agent.features.classifier import DEFAULT_TEMPERATURE, TextClassifier

    frame = ctx.train.frame[ctx.train.frame["label"].notna()]
    if len(frame) > MAX_CLASSIFIER_ROWS:
        per_label = max(20, MAX_CLASSIFIER_ROWS // max(1, frame["label"].nunique()))
        shuffled = frame.sample(frac=1.0, random_state=ctx.config.seed)
        frame = shuffled[shuffled.groupby("label").cumcount().to_numpy() < per_label]
    temperature = DEFAULT_TEMPERATURE
    with contextlib.suppress(ImportError, ValueError, AttributeError):
        temperature = float(ctx.features.oof.temperature)
    return TextClassifier(seed=ctx.config.seed, temperature=temperature).fit(
        frame["text"].astype(str).tolist(), frame["label"].astype(str).tolist())


def _existing_matches(ctx: AuditContext, texts: list[str]) -> list[list[tuple[str, float]]]:
    """For each text: existing training rows it (near-)duplicates, as (row id, similarity)."""
    ids = ctx.train.frame["id"].astype(str).tolist()
    normalized = [normalize(t) for t in texts]
    try:
        hits = ctx.features.neighbors.query(normalized)
        return [[(ids[pos], float(sim)) for pos, sim in row] for row in hits]
    except (ImportError, AttributeError):  # pragma: no cover - neighbors ship with the package
        exact = {t: i for i, t in zip(ids, ctx.features.normalized, strict=True)}
        return [[(exact[n], 1.0)] if n in exact else [] for n in normalized]


def _worse(final: tuple[bool, str], raw: tuple[bool, str] | None) -> tuple[bool, str]:
    """A rule's result over the final candidate and the raw LLM text: fails when either fails."""
    if not final[0] or raw is None or raw[0]:
        return final
    return False, f"llm text: {raw[1]}"


class Verifier:
    """Runs every rule over batches of candidate records, fitting the label classifier once and
    remembering earlier candidates (and raw LLM texts) for the not_near_candidates rule."""

    def __init__(self, ctx: AuditContext, frames: Sequence[str], client: LLMClient, settings: VerifySettings,
                 *, judge: bool = False) -> None:
        self.ctx, self.frames, self.client, self.settings, self.judge = ctx, frames, client, settings, judge
        self.model = _label_model(ctx)
        self.seen: list[str] = []
        self.seen_llm: list[str] = []

    def run(self, records: list[dict[str, Any]]) -> None:
        """Set checks_passed, checks_failed, reason, passed and status on every record with a candidate.

        well_formed and the near-duplicate rules also run on the raw LLM text (`llm_text`) of an
        "llm" candidate: the surface transforms must not hide an agent-voice reply or a copy."""
        ctx, s = self.ctx, self.settings
        live = [r for r in records if r["candidate"]]
        if not live:
            return
        cands = [r["candidate"] for r in live]
        raws = [r["llm_text"] if r.get("origin") == "llm" and r.get("llm_text") else "" for r in live]
        probs = self.model.predict_proba(cands)
        style = style_of(cands, ctx.train.label_set)
        with_raw = [i for i, raw in enumerate(raws) if raw and raw != cands[i]]
        existing = _existing_matches(ctx, cands + [raws[i] for i in with_raw])
        existing_raw = dict(zip(with_raw, existing[len(cands):], strict=True))
        classes = self.model.classes
        for i, rec in enumerate(live):
            raw = raws[i] if i in existing_raw else ""
            results: dict[str, tuple[bool, str]] = {
                "well_formed": _worse(check_well_formed(rec["candidate"], rec["source_text"], s),
                                      check_well_formed(raw, rec["source_text"], s) if raw else None),
                "keeps_label": check_keeps_label(rec["label"], probs[i], classes, s),
                "messier": check_messier(rec["polish_source"], float(style["polish"].iloc[i]), s),
                "not_near_source": _worse(check_not_near(rec["candidate"], [rec["source_text"]], s),
                                          check_not_near(raw, [rec["source_text"]], s) if raw else None),
                "not_near_candidates": _worse(check_not_near(rec["candidate"], self.seen, s),
                                              check_not_near(raw, self.seen_llm, s) if raw else None),
                "not_near_existing": _worse(check_not_near_existing(existing[i], s),
                                            check_not_near_existing(existing_raw[i], s) if raw else None),
                "no_template_frame": check_no_template_frame(rec["candidate"], rec["source_text"], self.frames, s),
            }
            self.seen.append(rec["candidate"])
            if raws[i]:
                self.seen_llm.append(raws[i])
            top = int(np.argmax(probs[i]))
            rec.update({
                "polish_candidate": round(float(style["polish"].iloc[i]), 3),
                "typo_rate": round(float(style["typo_rate"].iloc[i]), 3),
                "all_lowercase": bool(style["all_lowercase"].iloc[i]),
                "no_end_punct": bool(style["no_end_punct"].iloc[i]),
                "indirect_request": bool(style["indirect_request"].iloc[i]),
                "emotional": bool(style["emotional"].iloc[i]),
                "mentions_label_words": label_words(rec["label"]).lower() in rec["candidate"].lower(),
                "p_label": round(float(probs[i][classes.index(rec["label"])]), 3)
                if rec["label"] in classes else None,
                "classifier_top": classes[top],
            })
            rec["_results"] = results
        if self.judge:
            todo = [r for r in live if all(ok for ok, _ in r["_results"].values())]
            answers = ask_label_checks(self.client, [{"candidate": r["candidate"], "label": r["label"]} for r in todo])
            for rec, ans in zip(todo, answers, strict=True):
                rec["judge"] = ans.keeps_label if isinstance(ans, LabelCheck) else ""
                rec["_results"]["judge_keeps_label"] = check_judge(ans.keeps_label if isinstance(ans, LabelCheck)
                                                                    else None)
        for rec in live:
            summarise(rec, rec.pop("_results"))


def verify_batch(ctx: AuditContext, records: list[dict[str, Any]], frames: Sequence[str], client: LLMClient,
                 settings: VerifySettings, *, judge: bool = False) -> None:
    """Run every rule on every candidate record in place: checks_passed, checks_failed, reason, passed."""
    Verifier(ctx, frames, client, settings, judge=judge).run(records)


def summarise(rec: dict[str, Any], results: dict[str, tuple[bool, str]]) -> None:
    rec["checks_passed"] = ";".join(name for name, (ok, _) in results.items() if ok)
    rec["checks_failed"] = ";".join(name for name, (ok, _) in results.items() if not ok)
    rec["passed"] = all(ok for ok, _ in results.values())
    rec["reason"] = "; ".join(f"{name}: {detail}" for name, (ok, detail) in results.items()
                              if not ok) or "; ".join(f"{n}: {d}" for n, (_, d) in results.items() if d)
    rec["status"] = "pending" if rec["passed"] else "rejected"


# ---------------------------------------------------------------- the job
