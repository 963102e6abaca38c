"""`stress(data, model=...)`: score a model on eval rows and on messy variants of them.

`model` is a litellm model name (called through the project's LLM client, so the disk cache, retries
and the budget apply; `api_base` points it at a local OpenAI-compatible server) or a Python callable
`texts -> labels`. The eval rows are `eval` (default: `data`); the checker classifier that verifies
every variant keeps its label is fitted on `train` (default: `data`). See docs/stress.md.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from audit_agent.config import AuditConfig, load_config
from audit_agent.dataset import Dataset
from audit_agent.errors import ConfigError, InputError, LLMError
from audit_agent.io.loader import Role
from audit_agent.jobs.stress import (
    attach_predictions,
    make_variants,
    score,
    texts_to_predict,
    verify_variants,
)
from audit_agent.jobs.stress_result import StressResult, Variant
from audit_agent.tasks.stress_variants import STRESS_KINDS

if TYPE_CHECKING:
    from audit_agent.features.classifier import TextClassifier

Predictor = Callable[[list[str]], Sequence[str | None]]
DataLike = str | Path | pd.DataFrame
MAX_CHECKER_ROWS = 20_000
CALLABLE_BATCH = 256


def _load(source: DataLike, role: Role, cols: tuple[str | None, str | None, str | None]) -> Dataset:
    from audit_agent.io.loader import load_dataset

    if isinstance(source, pd.DataFrame):  # through a file, so a frame gets the same validation as a path
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{role}.parquet"
            source.to_parquet(path, index=False)
            ds = load_dataset(path, role=role, text_col=cols[0], label_col=cols[1], id_col=cols[2])
            ds.path = Path(f"<{role} DataFrame>")
            return ds
    return load_dataset(Path(source), role=role, text_col=cols[0], label_col=cols[1], id_col=cols[2])


def _labelled_rows(ds: Dataset, known: Sequence[str], max_rows: int | None, seed: int,
                   notes: list[str]) -> pd.DataFrame:
    """The eval rows with a label the checker knows, at most `max_rows` (a seeded sample, file order)."""
    if ds.kind != "classification":
        raise InputError(ds.path, "labels look like target texts, not class names: stress needs a classification "
                                  "set")
    frame = ds.frame[ds.frame["label"].notna()] if "label" in ds.frame.columns else ds.frame.iloc[0:0]
    if frame.empty:
        raise InputError(ds.path, "no eval row has a label (stress scores the model against the labels)")
    unknown = ~frame["label"].astype(str).isin(set(known))
    if unknown.any():
        notes.append(f"{int(unknown.sum())} eval rows have a label the training rows do not have (first: "
                     f"'{frame.loc[unknown, 'label'].iloc[0]}'); they are left out")
        frame = frame[~unknown]
        if frame.empty:
            raise InputError(ds.path, "no eval row has a label that occurs in the training rows")
    if max_rows is not None and len(frame) > max_rows:
        notes.append(f"{max_rows} of {len(frame)} eval rows sampled (seed {seed})")
        frame = frame.sample(max_rows, random_state=seed).sort_index()
    return frame[["id", "text", "label"]].astype(str).reset_index(drop=True)


def _checker(train: Dataset, seed: int) -> tuple[TextClassifier, str]:
    from audit_agent.features.classifier import TextClassifier

    frame = train.frame[train.frame["label"].notna()]
    if len(frame) > MAX_CHECKER_ROWS:  # evenly per label, like the paraphrase verification
        per_label = max(20, MAX_CHECKER_ROWS // max(1, frame["label"].nunique()))
        shuffled = frame.sample(frac=1.0, random_state=seed)
        frame = shuffled[shuffled.groupby("label").cumcount().to_numpy() < per_label]
    model = TextClassifier(seed=seed).fit(frame["text"].astype(str).tolist(), frame["label"].astype(str).tolist())
    return model, f"TF-IDF linear classifier fitted on {len(frame)} rows of {train.path.name}"


def _predict_callable(fn: Predictor, texts: list[str]) -> dict[str, str | None]:
    answers: dict[str, str | None] = {}
    for start in range(0, len(texts), CALLABLE_BATCH):
        batch = texts[start:start + CALLABLE_BATCH]
        got = list(fn(list(batch)))
        if len(got) != len(batch):
            raise ConfigError(f"model callable returned {len(got)} labels for {len(batch)} texts")
        answers.update({t: None if g is None else str(g).strip() for t, g in zip(batch, got, strict=True)})
    return answers


def _fit_budget(cfg: AuditConfig, n_texts: int, labels: Sequence[str], texts: Sequence[str]) -> AuditConfig:
    """Calls and tokens enough for every text, unless the config or --max-calls set them."""
    from audit_agent.llm.prompts import render_prompt
    from audit_agent.tasks.stress import PROMPT, reply_tokens

    budget = cfg.llm.budget
    update: dict[str, int] = {}
    if "max_calls" not in budget.model_fields_set:
        update["max_calls"] = n_texts
    if "max_tokens" not in budget.model_fields_set:
        longest = max(texts, key=len, default="")[: cfg.llm.max_row_chars]
        prompt = render_prompt(PROMPT, {"labels": list(labels), "text": longest})
        update["max_tokens"] = n_texts * (len(json.dumps(prompt)) // 3 + reply_tokens(labels))
    if not update:
        return cfg
    llm = cfg.llm.model_copy(update={"budget": budget.model_copy(update=update)})
    return cfg.model_copy(update={"llm": llm})


def _predict_llm(cfg: AuditConfig, texts: list[str], labels: Sequence[str],
                 notes: list[str]) -> tuple[dict[str, str | None], dict[str, str], str, dict[str, float]]:
    from audit_agent.llm.base import BudgetExhausted
    from audit_agent.llm.capped import CappedClient
    from audit_agent.llm.factory import open_client
    from audit_agent.tasks.stress import classify_texts

    with open_client(cfg) as client:
        share = CappedClient(client, cfg.llm.budget.max_calls, "stress")  # logical calls, as every job
        replies = classify_texts(share, texts, labels, max_row_chars=cfg.llm.max_row_chars)
        description, usage = client.description, client.usage
    answers: dict[str, str | None] = {}
    errors: dict[str, str] = {}
    for text, reply in zip(texts, replies, strict=True):
        answers[text] = reply if isinstance(reply, str) else None
        if not isinstance(reply, str):
            errors[text] = str(reply)[:300] or type(reply).__name__
    spent = sum(isinstance(r, BudgetExhausted) for r in replies)
    if texts and len(errors) == len(texts) and spent < len(texts):
        raise LLMError(f"{cfg.llm.model}: none of the {len(texts)} texts got an answer "
                       f"(first error: {next(iter(errors.values()))})")
    if spent:
        notes.append(f"the LLM budget ran out: {spent} texts were not sent; raise --max-calls or llm.budget and "
                     "rerun (answers so far are cached)")
    used = {"calls": usage.calls, "cached": usage.cached, "failed": usage.failed, "seconds": round(usage.seconds, 2),
            "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "cost_usd": round(usage.cost_usd, 6)}
    return answers, errors, description, used


def stress(data: DataLike, *, model: str | Predictor, eval: DataLike | None = None, train: DataLike | None = None,
           api_base: str | None = None, config: AuditConfig | Path | None = None,
           kinds: Sequence[str] = STRESS_KINDS, max_rows: int | None = None, seed: int | None = None,
           max_calls: int | None = None, out: Path | None = None, text_col: str | None = None,
           label_col: str | None = None, id_col: str | None = None) -> StressResult:
    """Score `model` on the eval rows and on their messy variants (each verified to keep its label);
    write stress.md and stress.json to `out` when given. Raises InputError / ConfigError (bad input),
    LLMError (the model cannot be used)."""
    started = time.perf_counter()
    unknown = [k for k in kinds if k not in STRESS_KINDS]
    if unknown:
        raise ConfigError(f"unknown variant kind '{unknown[0]}' (known: {', '.join(STRESS_KINDS)})")
    overrides = {"llm.api_base": api_base, "seed": seed, "llm.budget.max_calls": max_calls}
    if isinstance(model, str):
        overrides["llm.model"] = model
    elif not callable(model):
        raise ConfigError("model must be a litellm model name or a callable texts -> labels")
    cfg = config if isinstance(config, AuditConfig) else load_config(config, overrides)
    cols = (text_col, label_col, id_col)
    train_ds = _load(train if train is not None else data, "train", cols)
    eval_ds = _load(eval, "eval", cols) if eval is not None else train_ds
    if train_ds.kind != "classification" or len(train_ds.label_set) < 2:
        raise InputError(train_ds.path, "stress needs class labels (two or more) in the training rows")
    notes: list[str] = []
    labels = list(train_ds.label_set)
    rows = _labelled_rows(eval_ds, labels, max_rows, cfg.seed, notes)
    checker, checker_text = _checker(train_ds, cfg.seed)
    variants: list[Variant] = make_variants(rows, train_ds.frame[train_ds.frame["label"].notna()], kinds, cfg.seed)
    verify_variants(variants, checker)
    texts = texts_to_predict(variants)
    errors: dict[str, str] = {}
    usage: dict[str, float] = {}
    if isinstance(model, str):
        cfg = _fit_budget(cfg, len(texts), labels, texts)
        answers, errors, description, usage = _predict_llm(cfg, texts, labels, notes)
    else:
        answers, description = _predict_callable(model, texts), getattr(model, "__name__", "python callable")
    attach_predictions(variants, answers, labels, errors)
    result = score(variants, labels, model=description, checker=checker_text, kinds=kinds)
    result.notes = notes + result.notes
    result.usage = usage
    result.seconds = round(time.perf_counter() - started, 2)
    if out is not None:
        from audit_agent.report.stress_outputs import write_stress_outputs

        write_stress_outputs(result, out)
    return result
