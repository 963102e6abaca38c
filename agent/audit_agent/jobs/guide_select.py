"""The guide job's deterministic parts: the old guide's definitions, colliding label pairs and rows
needing mind reading (from the findings' kinds), quoted examples picked from the out-of-fold
classifier, relabel candidates under the new tie-break rules, and marked fallback text."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import yaml

from audit_agent.checks import KINDS
from audit_agent.context import AuditContext
from audit_agent.features.text import normalize
from audit_agent.findings import Finding
from audit_agent.tasks.guide import MindAction, MindReadingRow, PairSection, pair_key

EXAMPLES_PER_LABEL = 2
MAX_EXAMPLE_CHARS = 200
MAX_NEIGHBOURS = 4
MAX_MIND_READING_ROWS = 50
NEEDS_REVIEW = "[needs review]"


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
    """Label pairs that collide according to the findings (`FindingKind.label_pairs`), with the kinds
    that said so."""
    known = set(labels)
    out: dict[tuple[str, str], list[str]] = {}
    for f in findings:
        kind = KINDS.get(f.check)
        for a, b in kind.label_pairs(f) if kind is not None else []:
            if a != b and a in known and b in known:
                sources = out.setdefault(pair_key(a, b), [])
                if f.check not in sources:
                    sources.append(f.check)
    return out


def ambiguous_row_ids(findings: Iterable[Finding]) -> dict[str, str]:
    """Row id -> the kind of finding that says its label cannot be read from the text alone
    (`FindingKind.mind_reading_rows`: conflicting labels, verified judge 'ambiguous' verdicts)."""
    out: dict[str, str] = {}
    for f in findings:
        kind = KINDS.get(f.check)
        for r in (kind.mind_reading_rows(f) if kind is not None else [])[:1000]:
            out.setdefault(r, f.check)
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
