"""`audit-agent guide`: rewrite the annotation guide from the audit's findings.

The LLM writes short bounded prose (per label: definition + what it is not; per colliding pair: a
tie-break condition and winner). Code does the rest (guide_select.py): picks quoted examples from
high-confidence out-of-fold rows (verbatim and carrying the label by construction), takes the pairs
from the findings, assigns an action to rows that need mind reading; verify/guide.py checks every
item; a failed item is repaired with one more call, and what still fails is marked "[needs review]".
The result is typed; report/guide_outputs.py writes the files.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from audit_agent.context import AuditContext
from audit_agent.errors import InputError
from audit_agent.findings import Finding
from audit_agent.jobs.base import run_job
from audit_agent.jobs.guide_document import render_guide
from audit_agent.jobs.guide_select import (
    MAX_EXAMPLE_CHARS,
    ambiguous_row_ids,
    colliding_pairs,
    fallback_label_section,
    fallback_pair,
    mind_reading_rows,
    neighbours_of,
    old_definitions,
    oof_table,
    pick_examples,
    relabel_candidates,
)
from audit_agent.llm.base import LLMClient
from audit_agent.tasks.guide import (
    LabelSection,
    LabelText,
    MindReadingRow,
    PairRule,
    PairSection,
    ask_label_texts,
    ask_pair_rule,
)
from audit_agent.verify.guide import ItemCheck, check_label_text, check_pair_rule, context_words, verify_guide

MAX_PAIRS = 60


@dataclass
class GuideResult:
    """The rewritten guide and how its items fared (report/guide_outputs.py writes the files)."""

    markdown: str
    old_text: str | None
    label_set: list[str]
    relabel: pd.DataFrame
    checks: list[ItemCheck]
    mind_reading: list[MindReadingRow]
    status_counts: dict[str, int]
    pairs: int
    llm_calls: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> int:
        return len(self.label_set)

    @property
    def relabel_candidates(self) -> int:
        return len(self.relabel)

    @property
    def mind_reading_rows(self) -> int:
        return len(self.mind_reading)

    @property
    def failed_checks(self) -> list[ItemCheck]:
        return [c for c in self.checks if not c.passed]


@dataclass
class GuidePlan:
    """What the guide job asks about: the labels with their quoted examples and prompt variables, the
    colliding pairs (with the kinds that named them) and the rows needing mind reading."""

    labels: list[str]
    olds: dict[str, str]
    oof: pd.DataFrame | None
    pairs: list[tuple[str, str]]
    pair_sources: dict[tuple[str, str], list[str]]
    flagged: dict[str, str]
    sections: dict[str, LabelSection]
    prompt_vars: dict[str, dict[str, Any]]
    notes: list[str]
    started: float


@dataclass
class GuideReplies:
    """The model's texts: every label section and pair rule (already repaired once where an item
    check failed, else marked "[needs review]"), and how many calls that took."""

    rules: dict[tuple[str, str], PairSection]
    llm_calls: int


class GuideJob:
    """The guide rewrite behind the job protocol (jobs/base.py)."""

    name = "guide"

    def __init__(self, old_guide_name: str | None = None) -> None:
        self.old_guide_name = old_guide_name

    def select(self, ctx: AuditContext, findings: Sequence[Finding]) -> GuidePlan:
        started = time.perf_counter()
        ds = ctx.train
        if ds.kind != "classification" or not ds.has_labels:
            raise InputError(ds.path, "the guide rewrite needs class labels")
        frame, labels = ds.frame, ds.label_set
        olds = old_definitions(ctx.guide_text, labels)
        notes: list[str] = []
        oof = oof_table(ctx)
        if oof is None:
            notes.append("no out-of-fold classifier: examples picked by length, no classifier-based relabelling")
        pair_sources = colliding_pairs(findings, labels)
        if len(pair_sources) > MAX_PAIRS:
            notes.append(f"{len(pair_sources)} colliding pairs; rules written for the first {MAX_PAIRS}")
        pairs = list(itertools.islice(sorted(pair_sources, key=lambda k: (-len(pair_sources[k]), k)), MAX_PAIRS))
        flagged = ambiguous_row_ids(findings)
        sections: dict[str, LabelSection] = {}
        prompt_vars: dict[str, dict[str, Any]] = {}
        per_text = frame.groupby("text")["label"].nunique()
        for label in labels:
            texts, ids = pick_examples(frame, oof, label, exclude=set(flagged), labels_per_text=per_text)
            sections[label] = LabelSection(label=label, definition="", not_this="", examples=texts, example_ids=ids)
            prompt_vars[label] = {
                "label": label, "examples": [t[:MAX_EXAMPLE_CHARS] for t in texts],
                "old_definition": olds.get(label, ""), "neighbours": ", ".join(neighbours_of(label, pairs, oof)),
                "allowed": ", ".join(labels[:80]),
            }
        return GuidePlan(list(labels), olds, oof, pairs, pair_sources, flagged, sections, prompt_vars, notes,
                         started)

    def call(self, client: LLMClient, plan: GuidePlan) -> GuideReplies:
        calls_before = client.usage.calls
        labels, sections = plan.labels, plan.sections
        _write_label_texts(client, labels, sections, plan.prompt_vars, plan.olds)
        rules: dict[tuple[str, str], PairSection] = {}
        for a, b in plan.pairs:
            variables = {
                "label_a": a, "label_b": b,
                "definition_a": sections[a].definition if sections[a].status != "needs review" else "",
                "definition_b": sections[b].definition if sections[b].status != "needs review" else "",
                "examples_a": [t[:MAX_EXAMPLE_CHARS] for t in sections[a].examples[:1]],
                "examples_b": [t[:MAX_EXAMPLE_CHARS] for t in sections[b].examples[:1]],
            }
            vocab = context_words(a, b, *sections[a].examples, *sections[b].examples)
            rules[(a, b)] = _write_pair_rule(client, variables, labels, plan.pair_sources[(a, b)], vocab)
        return GuideReplies(rules, client.usage.calls - calls_before)

    def verify(self, ctx: AuditContext, plan: GuidePlan, replies: GuideReplies, client: LLMClient) -> GuideResult:
        frame, rules = ctx.train.frame, replies.rules
        mind = mind_reading_rows(frame, plan.flagged, rules, plan.oof)
        relabel = relabel_candidates(frame, plan.oof, rules)
        markdown = render_guide(plan.sections, rules, mind, n_rows=len(frame), old_guide_name=self.old_guide_name,
                                notes=plan.notes)
        checks = verify_guide(plan.sections, rules, plan.labels, plan.pairs, frame, markdown)
        counts = {s: 0 for s in ("verified", "repaired", "needs review")}
        for status in [*(s.status for s in plan.sections.values()), *(r.status for r in rules.values())]:
            counts[status] += 1
        return GuideResult(
            markdown=markdown, old_text=ctx.guide_text, label_set=plan.labels, relabel=relabel, checks=checks,
            mind_reading=mind, status_counts=counts, pairs=len(rules), llm_calls=replies.llm_calls,
            seconds=time.perf_counter() - plan.started, notes=plan.notes)


def run_guide(ctx: AuditContext, findings: Sequence[Finding], client: LLMClient,
              old_guide_name: str | None = None) -> GuideResult:
    """The revised guide for `ctx` (the old guide is `ctx.guide_text`), verified item by item."""
    return run_job(GuideJob(old_guide_name), ctx, findings, client)


def _write_label_texts(client: LLMClient, labels: Sequence[str], sections: dict[str, LabelSection],
                       prompt_vars: dict[str, dict[str, Any]], olds: dict[str, str]) -> None:
    """Ask, verify, repair once, else fall back to marked template text."""
    replies = ask_label_texts(client, [prompt_vars[lab] for lab in labels])
    vocab = {lab: context_words(lab, *sections[lab].examples) for lab in labels}
    retry: list[tuple[str, dict[str, Any]]] = []
    for label, reply in zip(labels, replies, strict=True):
        problems = check_label_text(label, reply, labels, vocab[label]) if isinstance(reply, LabelText) else [
            f"no usable reply: {str(reply)[:120]}"]
        if not problems:
            assert isinstance(reply, LabelText)
            _accept_label(sections[label], reply, "verified")
            continue
        previous = reply if isinstance(reply, LabelText) else LabelText(definition="", not_this="")
        sections[label].problems = problems
        retry.append((label, {**prompt_vars[label], "previous": previous.model_dump(),
                              "problems": "; ".join(problems)}))
    if not retry:
        return
    second = ask_label_texts(client, [v for _, v in retry], repair=True)
    for (label, _), reply in zip(retry, second, strict=True):
        problems = check_label_text(label, reply, labels, vocab[label]) if isinstance(reply, LabelText) else [
            f"no usable reply: {str(reply)[:120]}"]
        if not problems:
            assert isinstance(reply, LabelText)
            _accept_label(sections[label], reply, "repaired")
        else:
            sec = sections[label]
            sec.definition, sec.not_this = fallback_label_section(label, olds.get(label))
            sec.status = "needs review"
            sec.problems = sec.problems + [f"after repair: {p}" for p in problems]


def _accept_label(sec: LabelSection, reply: LabelText, status: str) -> None:
    sec.definition = " ".join(reply.definition.split())
    sec.not_this = " ".join(reply.not_this.split())
    sec.status = status  # type: ignore[assignment]


def _write_pair_rule(client: LLMClient, variables: dict[str, Any], labels: Sequence[str],
                     sources: list[str], vocab: set[str]) -> PairSection:
    a, b = variables["label_a"], variables["label_b"]
    reply = ask_pair_rule(client, variables)
    problems = check_pair_rule(a, b, reply, labels, vocab) if isinstance(reply, PairRule) else [
        f"no usable reply: {str(reply)[:120]}"]
    status = "verified"
    if problems:
        previous = reply.model_dump() if isinstance(reply, PairRule) else {"winner": "", "when": ""}
        reply = ask_pair_rule(client, {**variables, "previous": previous, "problems": "; ".join(problems)},
                              repair=True)
        second = check_pair_rule(a, b, reply, labels, vocab) if isinstance(reply, PairRule) else [
            f"no usable reply: {str(reply)[:120]}"]
        if second:
            return PairSection(label_a=a, label_b=b, winner="", when=fallback_pair(a, b), sources=sources,
                               status="needs review", problems=problems + [f"after repair: {p}" for p in second])
        status = "repaired"
    assert isinstance(reply, PairRule)
    return PairSection(label_a=a, label_b=b, winner=reply.winner, when=" ".join(reply.when.split()),
                       sources=sources, status=status, problems=problems)  # type: ignore[arg-type]
