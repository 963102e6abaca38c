"""`audit-agent paraphrase`: messy real-style rewrites of over-polished rows, for human review.

Code picks the rows (most polished first, boosted by template_frame / coverage_gap / real_gap
findings, skipping rows whose label is in doubt, spread evenly over labels); the LLM writes one
rewrite per (row, style) and tasks/messify.py gives it the real batch's surface style (seeded);
code verifies every candidate (verify/paraphrase.py). A slot whose LLM candidate fails (or whose
call failed) gets a rule-only candidate (the source clipped and messified, origin "rule"), verified
the same way. All candidates, rejected ones with their reasons, go to paraphrases.jsonl /
paraphrases.csv with status "pending" (passed) or "rejected". `accept_paraphrases` merges the rows
a reviewer marked "accepted" into a new copy of the dataset.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from audit_agent.dataset import AuditContext
from audit_agent.errors import InputError
from audit_agent.features.text import normalize
from audit_agent.findings import Finding
from audit_agent.llm.base import LLMClient
from audit_agent.tasks.messify import StyleTargets, messify, row_seed, targets_from_real
from audit_agent.tasks.paraphrase import (
    MAX_REWRITE_CHARS,
    LabelCheck,
    Rewrite,
    ask_label_checks,
    ask_rewrites,
    label_words,
    style_for,
)
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

TEMPLATE_CHECKS = ("template_frame",)
GAP_CHECKS = ("coverage_gap", "real_gap")
DOUBTFUL_LABEL_CHECKS = ("conflicting_labels", "label_issues", "label_issue", "suspect_labels")
FRAME_KEYS = ("frame", "template", "opening", "pattern", "frames", "templates", "openings")
MAX_SOURCE_CHARS = 400
MAX_CLASSIFIER_ROWS = 10_000  # rows the keeps_label classifier is fitted on (evenly per label)
RULE_CORE_LEVELS = (1, 2, 0)  # clip_core level of the rule candidate of slot k (cycled)
ORIGINS = ("llm", "rule")


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


@dataclass
class ParaphraseResult:
    """What `run_paraphrase` wrote and how the candidates fared."""

    jsonl_path: Path
    csv_path: Path
    summary_path: Path
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


# ---------------------------------------------------------------- selection


def _style(ctx: AuditContext, split: str = "train") -> pd.DataFrame:
    try:
        from audit_agent.features.style import split_style

        return split_style(ctx, split)
    except ImportError:  # pragma: no cover - features/style.py ships with the package
        return pd.DataFrame({"polish": np.full(len(getattr(ctx, split).frame), 0.5)})


def style_of(texts: Sequence[str], labels: Sequence[str]) -> pd.DataFrame:
    """Style measurements of new texts, with label words counted as correctly spelled."""
    from audit_agent.features.style import label_words as style_label_words
    from audit_agent.features.style import style_frame

    return style_frame(list(texts), extra_words=style_label_words(labels))


def _rows_of(findings: Sequence[Finding], checks: Sequence[str]) -> set[str]:
    """Training row ids named by findings of `checks` (findings about other splits are skipped)."""
    return {str(r) for f in findings if f.check in checks and f.split == "train" for r in f.rows}


def template_frames(findings: Sequence[Finding]) -> list[str]:
    """Frame strings reported by the template_frame check (evidence keys frame/template/opening/...)."""
    frames: list[str] = []
    for f in findings:
        if f.check not in TEMPLATE_CHECKS:
            continue
        for key in FRAME_KEYS:
            value = f.evidence.get(key)
            values = value if isinstance(value, list) else [value]
            frames += [v for v in values if isinstance(v, str) and v.strip()]
    return sorted(set(frames))


def select_rows(ctx: AuditContext, findings: Sequence[Finding], max_rows: int,
                settings: ParaphraseSettings) -> pd.DataFrame:
    """Over-polished rows to rewrite: score = polish (+ boosts for rows in template or gap findings);
    rows at or above `min_polish`, with a label not in doubt and a distinct text, taken round-robin
    over labels (each label's highest scores first) up to `max_rows`."""
    frame = ctx.train.frame
    style = _style(ctx)
    ids = frame["id"].astype(str)
    templ, gap = _rows_of(findings, TEMPLATE_CHECKS), _rows_of(findings, GAP_CHECKS)
    doubtful = _rows_of(findings, DOUBTFUL_LABEL_CHECKS)
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


def _real_examples(ctx: AuditContext, label: str, n: int, seed: int) -> list[str]:
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


# ---------------------------------------------------------------- verification


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

    def __init__(self, ctx: AuditContext, frames: Sequence[str], client: LLMClient,
                 settings: ParaphraseSettings) -> None:
        self.ctx, self.frames, self.client, self.settings = ctx, frames, client, settings
        self.model = _label_model(ctx)
        self.seen: list[str] = []
        self.seen_llm: list[str] = []

    def run(self, records: list[dict[str, Any]]) -> None:
        """Set checks_passed, checks_failed, reason, passed and status on every record with a candidate.

        well_formed and the near-duplicate rules also run on the raw LLM text (`llm_text`) of an
        "llm" candidate: the surface transforms must not hide an agent-voice reply or a copy."""
        ctx, s = self.ctx, self.settings.verify
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
        if self.settings.judge:
            todo = [r for r in live if all(ok for ok, _ in r["_results"].values())]
            answers = ask_label_checks(self.client, [{"candidate": r["candidate"], "label": r["label"]} for r in todo])
            for rec, ans in zip(todo, answers, strict=True):
                rec["judge"] = ans.keeps_label if isinstance(ans, LabelCheck) else ""
                rec["_results"]["judge_keeps_label"] = check_judge(ans.keeps_label if isinstance(ans, LabelCheck)
                                                                    else None)
        for rec in live:
            _summarise(rec, rec.pop("_results"))


def verify_batch(ctx: AuditContext, records: list[dict[str, Any]], frames: Sequence[str], client: LLMClient,
                 settings: ParaphraseSettings) -> None:
    """Run every rule on every candidate record in place: checks_passed, checks_failed, reason, passed."""
    Verifier(ctx, frames, client, settings).run(records)


def _summarise(rec: dict[str, Any], results: dict[str, tuple[bool, str]]) -> None:
    rec["checks_passed"] = ";".join(name for name, (ok, _) in results.items() if ok)
    rec["checks_failed"] = ";".join(name for name, (ok, _) in results.items() if not ok)
    rec["passed"] = all(ok for ok, _ in results.values())
    rec["reason"] = "; ".join(f"{name}: {detail}" for name, (ok, detail) in results.items()
                              if not ok) or "; ".join(f"{n}: {d}" for n, (_, d) in results.items() if d)
    rec["status"] = "pending" if rec["passed"] else "rejected"


# ---------------------------------------------------------------- the job


def style_targets(ctx: AuditContext, settings: ParaphraseSettings) -> StyleTargets:
    """The surface-style shares messify aims at: the settings' when given, else measured on the
    --real batch's style frame, else the defaults."""
    if settings.targets is not None:
        return settings.targets
    if ctx.real is None or ctx.real.frame.empty:
        return StyleTargets()
    try:
        real_style = _style(ctx, "real")
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


def run_paraphrase(ctx: AuditContext, findings: Sequence[Finding], client: LLMClient, out_dir: Path,
                   per_row: int = 3, max_rows: int = 50, settings: ParaphraseSettings | None = None
                   ) -> ParaphraseResult:
    """Write paraphrases.jsonl, paraphrases.csv and paraphrase_summary.json into `out_dir`."""
    from audit_agent.report.paraphrase_outputs import write_review_batch

    settings = settings or ParaphraseSettings()
    start = time.perf_counter()
    calls_before = client.usage.calls
    ds = ctx.train
    if ds.kind != "classification" or not ds.has_labels:
        raise InputError(ds.path, "paraphrasing needs class labels")
    if per_row < 1 or max_rows < 1:
        raise InputError(ds.path, "--per-row and --max-rows must be at least 1")
    notes: list[str] = []
    rows = select_rows(ctx, findings, max_rows, settings)
    if len(rows) < max_rows:
        notes.append(f"{len(rows)} row(s) qualified (polish score >= {settings.min_polish}, label not in doubt); "
                     f"--max-rows was {max_rows}")
    frames = template_frames(findings)
    targets = style_targets(ctx, settings)
    records: list[dict[str, Any]] = []
    prompts: list[dict[str, Any]] = []
    seeds: list[int] = []
    for n, (rid, text, label, polish) in enumerate(zip(
            rows["id"].tolist(), rows["text"].tolist(), rows["label"].tolist(), rows["polish"].tolist(), strict=True)):
        real = _real_examples(ctx, str(label), settings.real_examples, ctx.config.seed + n)
        for k in range(per_row):
            records.append({
                "candidate_id": f"{rid}-p{k + 1}", "source_id": str(rid), "source_text": str(text),
                "label": str(label), "origin": "llm", "style_hint": style_for(k), "candidate": "", "llm_text": "",
                "transforms": "", "polish_source": round(float(polish), 3),
            })
            prompts.append({"text": str(text)[:MAX_SOURCE_CHARS], "label_words": label_words(str(label)),
                            "style": style_for(k), "real_examples": real})
            seeds.append(row_seed(ctx.config.seed, str(rid)))
    replies = ask_rewrites(client, prompts) if prompts else []
    for k_rec, (rec, reply, seed) in enumerate(zip(records, replies, seeds, strict=True)):
        _llm_record(rec, reply, targets, seed, k_rec % per_row, per_row, settings)
    verifier = Verifier(ctx, frames, client, settings) if records else None
    if verifier is not None:
        verifier.run(records)
    for rec in records:
        if not rec["candidate"]:
            _summarise(rec, {"well_formed": (False, f"no candidate: {rec.get('llm_error', 'empty reply')}")})
    if settings.rule_fallback and verifier is not None:
        rule_records = _distinct_per_row([_rule_record(rec, targets, seed, k_rec % per_row, per_row)
                                          for k_rec, (rec, seed) in enumerate(zip(records, seeds, strict=True))
                                          if not rec["passed"]])
        skipped = sum(1 for r in records if not r["passed"]) - len(rule_records)
        if skipped:
            notes.append(f"{skipped} rule candidate(s) not proposed: same text as an earlier rule candidate of "
                         "the same row")
        verifier.run(rule_records)
        records = _interleave(records, rule_records)
    passed = sum(1 for r in records if r["passed"])
    rejected_by = Counter(name for r in records for name in r["checks_failed"].split(";") if name)
    seconds = time.perf_counter() - start
    result = ParaphraseResult(
        jsonl_path=out_dir / "paraphrases.jsonl", csv_path=out_dir / "paraphrases.csv",
        summary_path=out_dir / "paraphrase_summary.json", rows_selected=len(rows), candidates=len(records),
        passed=passed, rejected_by=dict(sorted(rejected_by.items())), llm_calls=client.usage.calls - calls_before,
        seconds=seconds, notes=notes, by_origin=_origin_counts(records), style_targets=targets.as_dict())
    write_review_batch(result, records, model=client.description, per_row=per_row, max_rows=max_rows)
    return result


def _interleave(llm_records: list[dict[str, Any]], rule_records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """LLM records with each slot's rule record right after it, for the reviewer."""
    by_slot = {"{0}-p{2}".format(*r["candidate_id"].rpartition("-r")): r for r in rule_records}
    out: list[dict[str, Any]] = []
    for rec in llm_records:
        out.append(rec)
        if rec["candidate_id"] in by_slot:
            out.append(by_slot[rec["candidate_id"]])
    return out


def accept_paraphrases(review_file: Path, data_path: Path, out_dir: Path) -> Path:
    """Merge the review file's rows marked `accepted` into a new copy of the dataset in `out_dir`;
    the original file is never written. Returns the new file's path."""
    from audit_agent.io.loader import load_dataset
    from audit_agent.report.paraphrase_outputs import read_review_file, write_merged

    review = read_review_file(review_file)
    status = review.get("status", pd.Series("", index=review.index)).astype(str).str.strip().str.lower()
    accepted = review[status == "accepted"]
    if accepted.empty:
        raise InputError(review_file, "no row has status 'accepted' (mark the rows to keep, then run again)",
                         column="status")
    ds = load_dataset(data_path)
    known = set(ds.label_set)
    rows: list[dict[str, str]] = []
    for pos, text, label in zip(accepted.index.tolist(), accepted["candidate"].astype(str).str.strip(),
                                accepted["label"].astype(str).str.strip(), strict=True):
        if not text:
            raise InputError(review_file, "accepted row has an empty candidate", row=int(pos), column="candidate")
        if known and label not in known:
            raise InputError(review_file, f"accepted row has label '{label}', not a label of {data_path.name}",
                             row=int(pos), column="label")
        rows.append({"text": text, "label": label})
    out = write_merged(ds, rows, out_dir)
    if out.resolve() == data_path.resolve():  # pragma: no cover - write_merged names a new file
        raise InputError(data_path, "refusing to overwrite the original dataset")
    return out


def summary_dict(result: ParaphraseResult) -> dict[str, Any]:
    """The numbers of a run, as written to paraphrase_summary.json."""
    return json.loads(json.dumps({
        "rows_selected": result.rows_selected, "candidates": result.candidates, "passed": result.passed,
        "pass_share": round(result.pass_share, 4), "rejected_by": result.rejected_by,
        "llm_calls": result.llm_calls, "seconds": round(result.seconds, 2),
        "seconds_per_row": round(result.seconds_per_row, 2), "by_origin": result.by_origin,
        "style_targets": result.style_targets, "notes": result.notes}))
