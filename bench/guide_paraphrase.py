"""Guide rewrite and paraphrase batches measured against the configured model (default: the embedded
SmolLM2-135M).

A synthetic-style set is built at run time from Banking77 train (read from --data, never stored in
the repository): the first `--labels` labels, `--per-label` rows each, every row "polished" the way
a template generator writes (greeting, capitalised, punctuated, thanks). Banking77 test rows of the
same labels are the real batch. Prints, as JSON:

- paraphrase: rows, candidates, passed, pass share, rejections per rule, seconds per row, candidates
  and passes per origin (llm / rule), and the style gap: the cross-validated AUC of a classifier
  telling synthetic from real rows before and after adding every passing candidate;
- guide: seconds, labels, colliding pairs, item status counts, failed checks, LLM calls.

    python bench/guide_paraphrase.py --what paraphrase --labels 10 --per-label 20 --rows 10 --per-row 3
    python bench/guide_paraphrase.py --what guide --labels 4 --per-label 20

--mode llm-only turns messify and the rule fallback off (the LLM's text as is); --llm none makes
every call fail, so only rule candidates remain (no model needed, any sample size).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.findings import Finding, Severity

BANKING = Path("/work/shared/data/banking77")


def polish(text: str) -> str:
    """A synthetic-generator rendering of a real message: greeting, capitalised, punctuated, thanks."""
    body = " ".join(text.split()).rstrip(" .!?")
    body = re.sub(r"\bi\b", "I", body)
    body = body[0].upper() + body[1:] if body else body
    end = "?" if re.match(r"(?i)(how|what|why|when|where|can|could|is|are|do|does|will|would)\b", body) else "."
    return f"Hello, {body}{end} Thank you very much for your help."


def banking_sets(data: Path, n_labels: int, per_label: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(synthetic-style train, real batch) for the first `n_labels` Banking77 labels (sorted)."""
    train = pd.read_csv(data / "train.csv")
    test = pd.read_csv(data / "test.csv")
    labels = sorted(train["category"].unique())[:n_labels]
    parts = [g.sample(min(per_label, len(g)), random_state=seed) for _, g in
             train[train["category"].isin(labels)].groupby("category")]
    synth = pd.concat(parts, ignore_index=True)
    synth = pd.DataFrame({"id": [str(i) for i in range(len(synth))], "text": synth["text"].map(polish),
                          "label": synth["category"]})
    real = test[test["category"].isin(labels)].reset_index(drop=True)
    real = pd.DataFrame({"id": [str(i) for i in range(len(real))], "text": real["text"], "label": real["category"]})
    return synth, real


def make_ctx(train: pd.DataFrame, real: pd.DataFrame | None, where: Path, config: AuditConfig) -> AuditContext:
    where.mkdir(parents=True, exist_ok=True)
    path = where / "synthetic.csv"
    train[["text", "label"]].to_csv(path, index=False)
    real_ds = Dataset(path=where / "real.csv", frame=real) if real is not None else None
    return AuditContext(train=Dataset(path=path, frame=train), config=config, real=real_ds)


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


@contextlib.contextmanager
def no_llm_client() -> Iterator[Any]:
    """A client whose every call fails: only rule candidates (source clipped + messified) remain."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.fakes import FakeLLM

    yield FakeLLM(lambda _p, _v, _s: {}, fail=lambda _p, _v: True, description="no LLM (every call fails)")


def style_gap(synth: pd.DataFrame, real: pd.DataFrame, batch: pd.DataFrame) -> dict[str, Any]:
    """The synthetic-vs-real AUC before and after adding every passing candidate (a stand-in for a
    reviewer accepting all of them), and the mean P(synthetic) of sources and paraphrases."""
    accepted = batch[batch["status"] == "pending"]
    before, p_before = synthetic_vs_real_auc(synth["text"].tolist(), real["text"].tolist())
    after, p_after = synthetic_vs_real_auc(synth["text"].tolist() + accepted["candidate"].tolist(),
                                           real["text"].tolist())
    src_pos = synth.reset_index().set_index("id").loc[accepted["source_id"], "index"].to_numpy()
    origin = accepted["origin"].to_numpy()
    p_added = p_after[len(synth):]
    return {
        "auc_before": round(before, 4), "auc_after_adding_passing": round(after, 4),
        "added_rows": len(accepted),
        "p_synthetic_sources": round(float(p_before[src_pos].mean()), 3) if len(accepted) else None,
        "p_synthetic_paraphrases": round(float(p_added.mean()), 3) if len(accepted) else None,
        "p_synthetic_paraphrases_by_origin": {o: round(float(p_added[origin == o].mean()), 3)
                                              for o in ("llm", "rule") if (origin == o).any()},
    }


def measure(args: argparse.Namespace, cache_dir: Path) -> dict[str, Any]:
    from audit_agent.checks.label_issues import OverlapEvidence
    from audit_agent.jobs.guide import run_guide
    from audit_agent.jobs.paraphrase import run_paraphrase
    from audit_agent.jobs.paraphrase_select import ParaphraseSettings
    from audit_agent.llm.factory import open_client
    from audit_agent.report.paraphrase_outputs import write_review_batch

    config = AuditConfig.model_validate({"llm": {"model": args.model, "cache_dir": str(cache_dir)}})
    synth, real = banking_sets(args.data, args.labels, args.per_label)
    ctx = make_ctx(synth, real, args.out, config)
    labels = ctx.train.label_set
    findings = [Finding(check="label_overlap", severity=Severity.MEDIUM, message="overlap",
                        labels=[labels[i], labels[i + 1]],
                        evidence=OverlapEvidence(label_a=labels[i], label_b=labels[i + 1], rows_a=0, rows_b=0,
                                                 a_predicted_b=0, b_predicted_a=0, confusion_share=0.0,
                                                 identical_text_conflicts=0, examples_a_as_b=[], examples_b_as_a=[]))
                for i in range(0, min(4, len(labels) - 1), 2)]
    report: dict[str, Any] = {"synthetic_rows": len(synth), "real_rows": len(real), "labels": len(labels),
                              "mode": args.mode, "llm": args.llm}
    settings = ParaphraseSettings(messify=args.mode == "hybrid", rule_fallback=args.mode == "hybrid")
    opened = open_client(config) if args.llm == "model" else no_llm_client()
    with opened as client:
        report["model"] = client.description
        start = time.perf_counter()
        if args.what == "guide":
            guide = run_guide(ctx, findings, client)
            report["guide"] = {"seconds": round(time.perf_counter() - start, 1), "labels": guide.labels,
                               "pairs": guide.pairs, "status": guide.status_counts,
                               "failed_checks": len(guide.failed_checks), "llm_calls": guide.llm_calls,
                               "relabel_candidates": guide.relabel_candidates}
            return report
        para = run_paraphrase(ctx, [], client, per_row=args.per_row, max_rows=args.rows, settings=settings)
        report["paraphrase"] = {"seconds": round(time.perf_counter() - start, 1), "rows": para.rows_selected,
                                "candidates": para.candidates, "passed": para.passed,
                                "pass_share": round(para.pass_share, 3), "rejected_by": para.rejected_by,
                                "seconds_per_row": round(para.seconds_per_row, 1), "llm_calls": para.llm_calls,
                                "by_origin": para.by_origin, "style_targets": para.style_targets}
    batch = pd.read_csv(write_review_batch(para, args.out / "paraphrase")["csv"], dtype=str, keep_default_na=False)
    report["style_gap"] = style_gap(synth, real, batch)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--what", choices=("paraphrase", "guide"), default="paraphrase")
    parser.add_argument("--labels", type=int, default=10, help="the first N Banking77 labels (sorted)")
    parser.add_argument("--per-label", type=int, default=20, help="synthetic rows per label")
    parser.add_argument("--rows", type=int, default=10, help="paraphrase: rows to rewrite (--max-rows)")
    parser.add_argument("--per-row", type=int, default=3, help="paraphrase: candidates per row")
    parser.add_argument("--mode", choices=("hybrid", "llm-only"), default="hybrid")
    parser.add_argument("--llm", choices=("model", "none"), default="model",
                        help="model: the configured model; none: every call fails (rule candidates only)")
    parser.add_argument("--model", default=None, help="litellm model string; default: the embedded model")
    parser.add_argument("--data", type=Path, default=BANKING, help="folder with Banking77 train.csv and test.csv")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "guide-paraphrase-measure")
    args = parser.parse_args()
    if not (args.data / "train.csv").exists() or not (args.data / "test.csv").exists():
        parser.error(f"{args.data}: no Banking77 train.csv/test.csv there (--data)")
    with tempfile.TemporaryDirectory() as cache_dir:  # a fresh cache: every call is a real one
        print(json.dumps(measure(args, Path(cache_dir)), indent=2))


if __name__ == "__main__":
    main()
