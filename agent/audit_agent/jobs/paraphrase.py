"""`audit-agent paraphrase`: messy real-style rewrites of over-polished rows, for human review.

Code picks the rows (most polished first, boosted by template_frame / coverage_gap / real_gap
findings, skipping rows whose label is in doubt, spread evenly over labels); the LLM writes one
rewrite per (row, style) and tasks/messify.py gives it the real batch's surface style (seeded);
code verifies every candidate (verify/paraphrase.py). A slot whose LLM candidate fails (or whose
call failed) gets a rule-only candidate (the source clipped and messified, origin "rule"), verified
the same way. All candidates, rejected ones with their reasons, go to paraphrases.jsonl /
paraphrases.csv with status "pending" (passed) or "rejected" (report/paraphrase_outputs.py writes
them). `accepted_rows` reads back the rows a reviewer marked "accepted".
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.errors import InputError
from audit_agent.features.text import normalize
from audit_agent.findings import Finding
from audit_agent.jobs.base import run_job
from audit_agent.jobs.paraphrase_select import (
    ParaphraseSettings,
    real_examples,
    select_rows,
    style_frame_of,
    template_frames,
)
from audit_agent.llm.base import LLMClient
from audit_agent.tasks.messify import StyleTargets, messify, row_seed, targets_from_real
from audit_agent.tasks.paraphrase import MAX_REWRITE_CHARS, Rewrite, ask_rewrites, label_words, style_for
from audit_agent.verify.paraphrase_batch import Verifier, summarise

MAX_SOURCE_CHARS = 400
RULE_CORE_LEVELS = (1, 2, 0)  # clip_core level of the rule candidate of slot k (cycled)
ORIGINS = ("llm", "rule")


@dataclass
class ParaphraseResult:
    """Every candidate (`records`, the review batch's rows) and how they fared; report/ writes them."""

    records: list[dict[str, Any]]
    model: str
    per_row: int
    max_rows: int
    rows_selected: int
    candidates: int
    passed: int
    rejected_by: dict[str, int]
    llm_calls: int
    seconds: float
    notes: list[str] = field(default_factory=list)
    by_origin: dict[str, dict[str, Any]] = field(default_factory=dict)
    style_targets: dict[str, Any] = field(default_factory=dict)

    @property
    def pass_share(self) -> float:
        return self.passed / self.candidates if self.candidates else 0.0

    @property
    def seconds_per_row(self) -> float:
        return self.seconds / self.rows_selected if self.rows_selected else 0.0


def style_targets(ctx: AuditContext, settings: ParaphraseSettings) -> StyleTargets:
    """The surface-style shares messify aims at: the settings' when given, else measured on the
    --real batch's style frame, else the defaults."""
    if settings.targets is not None:
        return settings.targets
    if ctx.real is None or ctx.real.frame.empty:
        return StyleTargets()
    try:
        real_style = style_frame_of(ctx, "real")
    except ValueError:
        real_style = None
    return targets_from_real(ctx.real.frame["text"], real_style)


def _llm_record(rec: dict[str, Any], reply: object, targets: StyleTargets, seed: int, k: int, per_row: int,
                settings: ParaphraseSettings) -> None:
    """Fill the candidate of an "llm" record from the LLM's reply (messified when configured)."""
    if not isinstance(reply, Rewrite):
        rec["llm_error"] = str(reply)[:200]
        return
    raw = " ".join(reply.rewrite.split())[: MAX_REWRITE_CHARS + 60]
    rec["llm_text"] = raw
    if settings.messify and raw:
        out = messify(raw, targets, seed=seed, slot=k, slots=per_row, avoid=label_words(rec["label"]).split())
        rec["candidate"], rec["transforms"] = out.text, ";".join(out.transforms)
    else:
        rec["candidate"] = raw


def _rule_record(llm_rec: dict[str, Any], targets: StyleTargets, seed: int, k: int, per_row: int) -> dict[str, Any]:
    """The rule-only candidate for a slot: the source clipped (greeting, sign-off, formal padding at
    the slot's level) and messified with the slot's own draws."""
    level = RULE_CORE_LEVELS[k % len(RULE_CORE_LEVELS)]
    out = messify(llm_rec["source_text"], targets, seed=seed + 1, slot=k, slots=per_row,
                  avoid=label_words(llm_rec["label"]).split(), core=level)
    return {**{key: llm_rec[key] for key in ("source_id", "source_text", "label", "polish_source")},
            "candidate_id": "{0}-r{2}".format(*llm_rec["candidate_id"].rpartition("-p")), "origin": "rule", "llm_text": "",
            "style_hint": f"rule: clip (level {level}) + messify", "candidate": out.text,
            "transforms": ";".join(out.transforms)}


def _distinct_per_row(rule_records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop a rule candidate whose normalised text an earlier rule candidate of the same row already
    has (with real-style targets close to clean text, the slots of a row often clip to the same text)."""
    seen: set[tuple[str, str]] = set()
    out: list[dict[str, Any]] = []
    for rec in rule_records:
        key = (rec["source_id"], normalize(rec["candidate"]))
        if key not in seen:
            seen.add(key)
            out.append(rec)
    return out


def _origin_counts(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Candidates, passed and rejections per rule, for each origin (llm / rule)."""
    out: dict[str, dict[str, Any]] = {}
    for origin in ORIGINS:
        mine = [r for r in records if r.get("origin") == origin]
        rejected = Counter(name for r in mine for name in r["checks_failed"].split(";") if name)
        out[origin] = {"candidates": len(mine), "passed": sum(1 for r in mine if r["passed"]),
                       "rejected_by": dict(sorted(rejected.items()))}
    return out


@dataclass
class ParaphrasePlan:
    """The rows to rewrite, one record per (row, slot) with its prompt variables and seed."""

    rows: pd.DataFrame
    records: list[dict[str, Any]]
    prompts: list[dict[str, Any]]
    seeds: list[int]
    frames: list[str]
    targets: StyleTargets
    notes: list[str]
    started: float


@dataclass
class ParaphraseReplies:
    """The model's rewrites (a Rewrite, or the failure, per record) and the request count before them."""

    replies: list[object]
    calls_before: int


class ParaphraseJob:
    """The paraphrase batch behind the job protocol (jobs/base.py)."""

    name = "paraphrase"

    def __init__(self, per_row: int = 3, max_rows: int = 50, settings: ParaphraseSettings | None = None) -> None:
        self.per_row, self.max_rows = per_row, max_rows
        self.settings = settings or ParaphraseSettings()

    def select(self, ctx: AuditContext, findings: Sequence[Finding]) -> ParaphrasePlan:
        started = time.perf_counter()
        settings, per_row, max_rows = self.settings, self.per_row, self.max_rows
        ds = ctx.train
        if ds.kind != "classification" or not ds.has_labels:
            raise InputError(ds.path, "paraphrasing needs class labels")
        if per_row < 1 or max_rows < 1:
            raise InputError(ds.path, "--per-row and --max-rows must be at least 1")
        notes: list[str] = []
        rows = select_rows(ctx, findings, max_rows, settings)
        if len(rows) < max_rows:
            notes.append(f"{len(rows)} row(s) qualified (polish score >= {settings.min_polish}, label not in "
                         f"doubt); --max-rows was {max_rows}")
        records: list[dict[str, Any]] = []
        prompts: list[dict[str, Any]] = []
        seeds: list[int] = []
        for n, (rid, text, label, polish) in enumerate(zip(
                rows["id"].tolist(), rows["text"].tolist(), rows["label"].tolist(), rows["polish"].tolist(),
                strict=True)):
            real = real_examples(ctx, str(label), settings.real_examples, ctx.config.seed + n)
            for k in range(per_row):
                records.append({
                    "candidate_id": f"{rid}-p{k + 1}", "source_id": str(rid), "source_text": str(text),
                    "label": str(label), "origin": "llm", "style_hint": style_for(k), "candidate": "",
                    "llm_text": "", "transforms": "", "polish_source": round(float(polish), 3),
                })
                prompts.append({"text": str(text)[:MAX_SOURCE_CHARS], "label_words": label_words(str(label)),
                                "style": style_for(k), "real_examples": real})
                seeds.append(row_seed(ctx.config.seed, str(rid)))
        return ParaphrasePlan(rows, records, prompts, seeds, template_frames(findings),
                              style_targets(ctx, settings), notes, started)

    def call(self, client: LLMClient, plan: ParaphrasePlan) -> ParaphraseReplies:
        calls_before = client.usage.calls
        return ParaphraseReplies(list(ask_rewrites(client, plan.prompts)) if plan.prompts else [], calls_before)

    def verify(self, ctx: AuditContext, plan: ParaphrasePlan, replies: ParaphraseReplies,
               client: LLMClient) -> ParaphraseResult:
        settings, per_row, targets, notes = self.settings, self.per_row, plan.targets, plan.notes
        records, seeds = plan.records, plan.seeds
        for k_rec, (rec, reply, seed) in enumerate(zip(records, replies.replies, seeds, strict=True)):
            _llm_record(rec, reply, targets, seed, k_rec % per_row, per_row, settings)
        verifier = Verifier(ctx, plan.frames, client, settings.verify, judge=settings.judge) if records else None
        if verifier is not None:
            verifier.run(records)
        for rec in records:
            if not rec["candidate"]:
                summarise(rec, {"well_formed": (False, f"no candidate: {rec.get('llm_error', 'empty reply')}")})
        if settings.rule_fallback and verifier is not None:
            rule_records = _distinct_per_row([_rule_record(rec, targets, seed, k_rec % per_row, per_row)
                                              for k_rec, (rec, seed) in enumerate(zip(records, seeds, strict=True))
                                              if not rec["passed"]])
            skipped = sum(1 for r in records if not r["passed"]) - len(rule_records)
            if skipped:
                notes.append(f"{skipped} rule candidate(s) not proposed: same text as an earlier rule candidate "
                             "of the same row")
            verifier.run(rule_records)
            records = _interleave(records, rule_records)
        passed = sum(1 for r in records if r["passed"])
        rejected_by = Counter(name for r in records for name in r["checks_failed"].split(";") if name)
        return ParaphraseResult(
            records=records, model=client.description, per_row=per_row, max_rows=self.max_rows,
            rows_selected=len(plan.rows), candidates=len(records), passed=passed,
            rejected_by=dict(sorted(rejected_by.items())),
            llm_calls=client.usage.calls - replies.calls_before, seconds=time.perf_counter() - plan.started,
            notes=notes, by_origin=_origin_counts(records), style_targets=targets.as_dict())


def run_paraphrase(ctx: AuditContext, findings: Sequence[Finding], client: LLMClient, per_row: int = 3,
                   max_rows: int = 50, settings: ParaphraseSettings | None = None) -> ParaphraseResult:
    """Candidates for up to `max_rows` over-polished rows, `per_row` each, every one verified."""
    return run_job(ParaphraseJob(per_row, max_rows, settings), ctx, findings, client)


def _interleave(llm_records: list[dict[str, Any]], rule_records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """LLM records with each slot's rule record right after it, for the reviewer."""
    by_slot = {"{0}-p{2}".format(*r["candidate_id"].rpartition("-r")): r for r in rule_records}
    out: list[dict[str, Any]] = []
    for rec in llm_records:
        out.append(rec)
        if rec["candidate_id"] in by_slot:
            out.append(by_slot[rec["candidate_id"]])
    return out


def accepted_rows(review: pd.DataFrame, review_file: Path, ds: Dataset) -> list[dict[str, str]]:
    """The rows a reviewer marked `accepted` in a reviewed paraphrase batch, checked against `ds`'s
    labels, as {text, label} records to append to a new copy of the dataset."""
    status = review.get("status", pd.Series("", index=review.index)).astype(str).str.strip().str.lower()
    accepted = review[status == "accepted"]
    if accepted.empty:
        raise InputError(review_file, "no row has status 'accepted' (mark the rows to keep, then run again)",
                         column="status")
    known = set(ds.label_set)
    rows: list[dict[str, str]] = []
    for pos, text, label in zip(accepted.index.tolist(), accepted["candidate"].astype(str).str.strip(),
                                accepted["label"].astype(str).str.strip(), strict=True):
        if not text:
            raise InputError(review_file, "accepted row has an empty candidate", row=int(pos), column="candidate")
        if known and label not in known:
            raise InputError(review_file, f"accepted row has label '{label}', not a label of {ds.path.name}",
                             row=int(pos), column="label")
        rows.append({"text": text, "label": label})
    return rows


def summary_dict(result: ParaphraseResult) -> dict[str, Any]:
    """The numbers of a run, as written to paraphrase_summary.json."""
    return json.loads(json.dumps({
        "rows_selected": result.rows_selected, "candidates": result.candidates, "passed": result.passed,
        "pass_share": round(result.pass_share, 4), "rejected_by": result.rejected_by,
        "llm_calls": result.llm_calls, "seconds": round(result.seconds, 2),
        "seconds_per_row": round(result.seconds_per_row, 2), "by_origin": result.by_origin,
        "style_targets": result.style_targets, "notes": result.notes}))
