"""`audit-agent guide`: rewrite the annotation guide from the audit's findings.

The LLM writes short bounded prose (per label: definition + what it is not; per colliding pair: a
tie-break condition and winner). Code does the rest: picks quoted examples from high-confidence
out-of-fold rows (verbatim and carrying the label by construction), takes the pairs from the
findings, assigns an action to rows that need mind reading, verifies every item, repairs a failed
item with one more call, and marks what still fails as "[needs review]" template text.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from audit_agent.dataset import AuditContext
from audit_agent.errors import InputError
from audit_agent.features.text import normalize
from audit_agent.findings import Finding
from audit_agent.llm.base import LLMClient
from audit_agent.tasks.guide import (
    LabelSection,
    LabelText,
    MindAction,
    MindReadingRow,
    PairRule,
    PairSection,
    ask_label_texts,
    ask_pair_rule,
    pair_key,
)
from audit_agent.verify.guide import ItemCheck, check_label_text, check_pair_rule, context_words, verify_guide

PAIR_CHECKS = ("label_overlap", "conflicting_labels")
AMBIGUOUS_VERDICTS = {"ambiguous", "needs_context", "unclear", "mind_reading", "cannot_tell"}
EXAMPLES_PER_LABEL = 2
MAX_EXAMPLE_CHARS = 200
MAX_NEIGHBOURS = 4
MAX_MIND_READING_ROWS = 50
MAX_PAIRS = 60
NEEDS_REVIEW = "[needs review]"


@dataclass
class GuideResult:
    """What `run_guide` wrote and how the items fared."""

    guide_path: Path
    diff_path: Path
    relabel_path: Path
    checks_path: Path
    labels: int
    pairs: int
    status_counts: dict[str, int]
    relabel_candidates: int
    mind_reading_rows: int
    failed_checks: list[ItemCheck]
    llm_calls: int
    seconds: float
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- inputs


def read_old_guide(path: Path | None) -> str | None:
    """The old guide's text, or None when no guide was given."""
    if path is None:
        return None
    if not path.exists():
        raise InputError(path, "guide file not found")
    return path.read_text(encoding="utf-8", errors="replace")


def old_definitions(text: str | None, labels: Sequence[str]) -> dict[str, str]:
    """Per-label text of the old guide (YAML mapping or markdown sections headed by the label name)."""
    if not text:
        return {}
    wanted = {_label_key(lab): lab for lab in labels}
    found: dict[str, str] = {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict):
        if isinstance(data.get("labels"), dict | list):
            data = data["labels"]
        items: Iterable[tuple[Any, Any]] = data.items() if isinstance(data, dict) else (
            (d.get("name") or d.get("label"), d) for d in data if isinstance(d, dict))
        for name, value in items:
            lab = wanted.get(_label_key(str(name)))
            if lab is not None:
                found[lab] = _flatten(value)
        if found:
            return {k: v[:300] for k, v in found.items()}
    heading = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
    current: str | None = None
    body: list[str] = []
    for line in [*text.splitlines(), "# end"]:
        m = heading.match(line)
        if m:
            if current is not None and body:
                found.setdefault(current, " ".join(" ".join(body).split())[:300])
            name = re.sub(r"^(label|class|intent)\s*[:\-]\s*", "", m.group(2), flags=re.IGNORECASE)
            current = wanted.get(_label_key(name))
            body = []
        elif current is not None and line.strip():
            body.append(line.strip())
    return found


def _label_key(name: str) -> str:
    return re.sub(r"[\s_\-`'\"*]+", " ", name).strip().lower()


def _flatten(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}: {_flatten(v)}" for k, v in value.items() if k not in ("name", "label"))
    if isinstance(value, list):
        return " ".join(_flatten(v) for v in value)
    return " ".join(str(value).split()) if value is not None else ""


def colliding_pairs(findings: Iterable[Finding], labels: Sequence[str]) -> dict[tuple[str, str], list[str]]:
    """Label pairs that collide according to the findings, with the checks that said so."""
    known = set(labels)
    out: dict[tuple[str, str], list[str]] = {}
    for f in findings:
        if f.check not in PAIR_CHECKS:
            continue
        for a, b in _pairs_of(f):
            if a != b and a in known and b in known:
                sources = out.setdefault(pair_key(a, b), [])
                if f.check not in sources:
                    sources.append(f.check)
    return out


def _pairs_of(f: Finding) -> list[tuple[str, str]]:
    ev = f.evidence
    pairs: list[tuple[str, str]] = []
    for key in ("pairs", "label_pairs", "pair"):
        value = ev.get(key)
        if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, str) for v in value):
            pairs.append((value[0], value[1]))
        elif isinstance(value, list):
            for p in value:
                if isinstance(p, list | tuple) and len(p) >= 2:
                    pairs.append((str(p[0]), str(p[1])))
                elif isinstance(p, dict):
                    a = p.get("label_a", p.get("a"))
                    b = p.get("label_b", p.get("b"))
                    if a is not None and b is not None:
                        pairs.append((str(a), str(b)))
    for ka, kb in (("label_a", "label_b"), ("a", "b")):
        if isinstance(ev.get(ka), str) and isinstance(ev.get(kb), str):
            pairs.append((ev[ka], ev[kb]))
    if not pairs and len(f.labels) >= 2:
        pairs = list(itertools.combinations([str(lab) for lab in f.labels[:6]], 2))
    return pairs


def ambiguous_row_ids(findings: Iterable[Finding]) -> dict[str, str]:
    """Row id -> the check that flagged it as needing mind reading (verified judge 'ambiguous'
    verdicts, e.g. judge_ambiguous, and rows whose near-identical text carries conflicting labels)."""
    out: dict[str, str] = {}
    for f in findings:
        verdict = str(f.evidence.get("verdict", "")).lower()
        if f.split != "train":
            continue
        if f.check == "conflicting_labels" or (f.source == "judge" and f.verified and (
                verdict in AMBIGUOUS_VERDICTS or "ambiguous" in f.check)):
            for r in f.rows[:1000]:
                out.setdefault(str(r), f.check)
    return out


def oof_table(ctx: AuditContext) -> pd.DataFrame | None:
    """id, text, label, suggested (OOF argmax), p_given, p_suggested per training row; None when the
    out-of-fold model is not available (no labels, or features/classifier.py missing)."""
    try:
        oof = ctx.features.oof
    except (ImportError, ValueError, AttributeError):
        return None
    import numpy as np

    probs = np.asarray(oof.probs)
    given = np.asarray(oof.given)
    top = probs.argmax(axis=1)
    rows = np.arange(len(given))
    frame = ctx.train.frame
    return pd.DataFrame({
        "id": frame["id"].astype(str).to_numpy(),
        "text": frame["text"].to_numpy(),
        "label": frame["label"].to_numpy(),
        "suggested": [oof.classes[i] for i in top],
        "p_given": np.where(given >= 0, probs[rows, np.clip(given, 0, None)], np.nan),
        "p_suggested": probs[rows, top],
    })


# ---------------------------------------------------------------- deterministic parts


def pick_examples(frame: pd.DataFrame, oof: pd.DataFrame | None, label: str, exclude: set[str],
                  k: int = EXAMPLES_PER_LABEL, labels_per_text: pd.Series | None = None
                  ) -> tuple[list[str], list[str]]:
    """Up to `k` example texts of `label` and their row ids: rows the out-of-fold model also puts in
    `label` with the highest confidence, short enough to quote, whose text carries no other label."""
    table = oof if oof is not None else frame.assign(id=frame["id"].astype(str))
    mine = table[table["label"] == label]
    if mine.empty:
        return [], []
    if labels_per_text is None:
        labels_per_text = frame.groupby("text")["label"].nunique()
    clean = mine[mine["text"].map(labels_per_text).fillna(1) <= 1]
    clean = clean[~clean["id"].isin(exclude)]
    if clean.empty:
        clean = mine
    length = clean["text"].str.len()
    ok_len = (length >= 10) & (length <= MAX_EXAMPLE_CHARS)
    clean = clean.assign(_len=length, _fits=~ok_len)
    if oof is not None:
        clean = clean.assign(_agree=clean["suggested"] != label, _p=-clean["p_given"].fillna(0))
        order = ["_agree", "_fits", "_p", "_len", "id"]
    else:
        median = float(length.median())
        clean = clean.assign(_mid=(length - median).abs())
        order = ["_fits", "_mid", "id"]
    texts: list[str] = []
    ids: list[str] = []
    seen: set[str] = set()
    for row in clean.sort_values(order, kind="stable").itertuples():
        key = normalize(str(row.text))
        if key in seen:
            continue
        seen.add(key)
        texts.append(str(row.text))
        ids.append(str(row.id))
        if len(texts) >= k:
            break
    return texts, ids


def neighbours_of(label: str, pairs: Iterable[tuple[str, str]], oof: pd.DataFrame | None) -> list[str]:
    """Labels that collide with `label`: pairs from the findings first, then OOF confusions."""
    out = [b if a == label else a for a, b in pairs if label in (a, b)]
    if oof is not None and len(out) < MAX_NEIGHBOURS:
        mine = oof[(oof["label"] == label) & (oof["suggested"] != label)]
        out += [lab for lab in mine["suggested"].value_counts().index if lab not in out]
    return out[:MAX_NEIGHBOURS]


def mind_reading_rows(frame: pd.DataFrame, flagged: dict[str, str], rules: dict[tuple[str, str], PairSection],
                      oof: pd.DataFrame | None) -> list[MindReadingRow]:
    """The guide's explicit action for each row that needs mind reading (capped)."""
    if not flagged:
        return []
    ids = frame["id"].astype(str).tolist()
    texts = frame["text"].astype(str).tolist()
    labels_of_text: dict[str, set[str]] = {}
    for text, label in zip(texts, frame["label"].tolist(), strict=True):
        if label is not None:
            labels_of_text.setdefault(text, set()).add(str(label))
    model = _oof_by_id(oof)
    rows: list[MindReadingRow] = []
    seen: set[str] = set()
    for rid, text in zip(ids, texts, strict=True):
        if rid not in flagged or text in seen:
            continue
        seen.add(text)
        labs = sorted(labels_of_text.get(text, set()))
        ruled = [rules[k] for k in itertools.combinations(labs, 2)
                 if k in rules and rules[k].status != "needs review"]
        n_words = len(text.split())
        action: MindAction
        if ruled:
            action, why = "apply tie-break rule", ruled[0].rule
        elif n_words <= 3:
            action, why = "add context", f"only {n_words} word(s): the intent cannot be read from the text"
        elif len(labs) >= 2:
            action = "move to a broader class"
            why = "the same text carries " + " and ".join(f"`{lab}`" for lab in labs) + \
                "; without a rule, use one class covering both"
        else:
            p = model.get(rid, ("", float("nan"), float("nan")))[1]
            action = "drop"
            why = f"flagged by {flagged[rid]}" + (f"; classifier confidence in the label {p:.2f}" if p == p else "")
        rows.append(MindReadingRow(id=rid, text=text, labels=labs, action=action, why=why))
        if len(rows) >= MAX_MIND_READING_ROWS:
            break
    return rows


def relabel_candidates(frame: pd.DataFrame, oof: pd.DataFrame | None,
                       rules: dict[tuple[str, str], PairSection]) -> pd.DataFrame:
    """Rows whose label the verified tie-break rules would change: the classifier suggests the other
    label of a ruled pair and the rule picks that label, or the same text carries both labels of a
    ruled pair and this row has the losing one."""
    columns = ["id", "text", "label", "proposed_label", "pair", "rule", "classifier_suggests",
               "p_given", "p_suggested", "reason"]
    ruled = {k: r for k, r in rules.items() if r.status != "needs review" and r.winner in k}
    records: dict[str, dict[str, Any]] = {}
    model = _oof_by_id(oof)

    def record(rid: str, text: str, label: str, rule: PairSection, reason: str) -> None:
        sug, p_given, p_sug = model.get(rid, ("", float("nan"), float("nan")))
        records[rid] = {
            "id": rid, "text": text, "label": label, "proposed_label": rule.winner,
            "pair": f"{rule.key[0]} / {rule.key[1]}", "rule": rule.rule, "classifier_suggests": sug,
            "p_given": round(p_given, 4), "p_suggested": round(p_sug, 4), "reason": reason,
        }

    if not ruled:
        return pd.DataFrame(columns=columns)
    ids = frame["id"].astype(str).tolist()
    texts = frame["text"].astype(str).tolist()
    labels = [None if v is None else str(v) for v in frame["label"].tolist()]
    for rid, text, label in zip(ids, texts, labels, strict=True):
        if label is None or rid not in model:
            continue
        sug, p_given, p_sug = model[rid]
        rule = ruled.get(pair_key(label, sug)) if sug != label else None
        if rule is not None and rule.winner == sug:
            record(rid, text, label, rule,
                   f"the classifier (out-of-fold) puts this row in `{sug}` (p={p_sug:.2f} vs "
                   f"{p_given:.2f} for `{label}`) and the tie-break rule for this pair picks `{rule.winner}`")
    labels_of_text: dict[str, set[str]] = {}
    for text, label in zip(texts, labels, strict=True):
        if label is not None:
            labels_of_text.setdefault(text, set()).add(label)
    for rid, text, label in zip(ids, texts, labels, strict=True):
        seen = labels_of_text.get(text, set())
        if label is None or len(seen) < 2 or rid in records:
            continue
        for key, rule in ruled.items():
            if set(key) <= seen and label in key and label != rule.winner:
                record(rid, text, label, rule, f"the same text also carries `{rule.winner}`; the tie-break "
                                               f"rule for this pair picks `{rule.winner}`")
                break
    out = pd.DataFrame(list(records.values()), columns=columns)
    if not out.empty:
        out = out.sort_values(["p_suggested", "id"], ascending=[False, True], na_position="last", kind="stable")
    return out.reset_index(drop=True)


def _oof_by_id(oof: pd.DataFrame | None) -> dict[str, tuple[str, float, float]]:
    """Row id -> (suggested label, p of the given label, p of the suggested label)."""
    if oof is None:
        return {}
    return {str(i): (str(s), float(pg), float(ps)) for i, s, pg, ps in zip(
        oof["id"].tolist(), oof["suggested"].tolist(), oof["p_given"].tolist(), oof["p_suggested"].tolist(),
        strict=True)}


def fallback_label_section(label: str, old: str | None) -> tuple[str, str]:
    """Clearly marked template text for a label whose LLM text failed verification twice."""
    base = f"{NEEDS_REVIEW} Messages labelled `{label}`"
    definition = f"{base}: {old[:150]}" if old else f"{base}; write a one-sentence definition."
    return definition, f"{NEEDS_REVIEW} Say which similar messages belong to another label."


def fallback_pair(a: str, b: str) -> str:
    return (f"{NEEDS_REVIEW} No verified tie-break rule: when a message fits both `{a}` and `{b}`, "
            "send it to review and write the rule by hand.")


# ---------------------------------------------------------------- the job


def run_guide(ctx: AuditContext, findings: Sequence[Finding], client: LLMClient, out_dir: Path,
              old_guide_path: Path | None = None) -> GuideResult:
    """Write revised_guide.md, revised_guide.diff, relabel_candidates.csv and guide_verification.csv."""
    from audit_agent.report.guide_outputs import render_guide, write_guide_outputs

    start = time.perf_counter()
    calls_before = client.usage.calls
    ds = ctx.train
    if ds.kind != "classification" or not ds.has_labels:
        raise InputError(ds.path, "the guide rewrite needs class labels")
    frame = ds.frame
    labels = ds.label_set
    old_text = read_old_guide(old_guide_path) if old_guide_path is not None else ctx.guide_text
    olds = old_definitions(old_text, labels)
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
    exclude = set(flagged)
    for label in labels:
        texts, ids = pick_examples(frame, oof, label, exclude=exclude, labels_per_text=per_text)
        sections[label] = LabelSection(label=label, definition="", not_this="", examples=texts, example_ids=ids)
        prompt_vars[label] = {
            "label": label, "examples": [t[:MAX_EXAMPLE_CHARS] for t in texts],
            "old_definition": olds.get(label, ""), "neighbours": ", ".join(neighbours_of(label, pairs, oof)),
            "allowed": ", ".join(labels[:80]),
        }
    _write_label_texts(client, labels, sections, prompt_vars, olds)

    rules: dict[tuple[str, str], PairSection] = {}
    for a, b in pairs:
        variables = {
            "label_a": a, "label_b": b,
            "definition_a": sections[a].definition if sections[a].status != "needs review" else "",
            "definition_b": sections[b].definition if sections[b].status != "needs review" else "",
            "examples_a": [t[:MAX_EXAMPLE_CHARS] for t in sections[a].examples[:1]],
            "examples_b": [t[:MAX_EXAMPLE_CHARS] for t in sections[b].examples[:1]],
        }
        vocab = context_words(a, b, *sections[a].examples, *sections[b].examples)
        rules[(a, b)] = _write_pair_rule(client, variables, labels, pair_sources[(a, b)], vocab)

    mind = mind_reading_rows(frame, flagged, rules, oof)
    relabel = relabel_candidates(frame, oof, rules)
    markdown = render_guide(sections, rules, mind, n_rows=len(frame), old_guide_name=(
        old_guide_path.name if old_guide_path is not None else None), notes=notes)
    checks = verify_guide(sections, rules, labels, pairs, frame, markdown)
    paths = write_guide_outputs(out_dir, markdown, old_text, labels, relabel, checks)
    counts = {s: 0 for s in ("verified", "repaired", "needs review")}
    for status in [*(s.status for s in sections.values()), *(r.status for r in rules.values())]:
        counts[status] += 1
    return GuideResult(
        guide_path=paths["guide"], diff_path=paths["diff"], relabel_path=paths["relabel"],
        checks_path=paths["checks"], labels=len(labels), pairs=len(rules), status_counts=counts,
        relabel_candidates=len(relabel), mind_reading_rows=len(mind),
        failed_checks=[c for c in checks if not c.passed], llm_calls=client.usage.calls - calls_before,
        seconds=time.perf_counter() - start, notes=notes)


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
