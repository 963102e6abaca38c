"""The one contract every kind of finding and every check follows (as scikit-learn's check_estimator
does for estimators): declared in one place, run on a tiny set, typed findings, never print or write;
and every check name the code uses is a registered one."""

from __future__ import annotations

import ast
import os
import typing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audit_agent.checks import KINDS, REGISTRY, Check
from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.findings import Evidence, Finding

SOURCE = Path(__file__).resolve().parents[2] / "agent" / "audit_agent"
WORDS = ["refund", "card", "late", "login", "password", "order", "charge", "cancel", "plan", "reset"]


def _models(kind_evidence: object) -> tuple[type[Evidence], ...]:
    return typing.get_args(kind_evidence) or (kind_evidence,)  # type: ignore[return-value]


def _tiny(n: int, seed: int, labels: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    texts = [f"{'Hello, ' if i % 5 == 0 else ''}my {rng.choice(WORDS)} {rng.choice(WORDS)} is {i % 7} days "
             f"{rng.choice(WORDS)}{'?' if i % 3 else '.'}" for i in range(n)]
    texts[1] = texts[0]  # an exact duplicate
    return pd.DataFrame({"id": [f"r{i}" for i in range(n)], "text": texts, "label": [labels[i % len(labels)]
                                                                                     for i in range(n)]})


@pytest.fixture(scope="module")
def tiny_ctx() -> AuditContext:
    labels = ["refund_request", "login_problem", "card_lost"]
    train = Dataset(path=Path("train.csv"), frame=_tiny(60, 0, labels))
    ev = Dataset(path=Path("eval.csv"), frame=_tiny(20, 1, labels))
    real = Dataset(path=Path("real.csv"), frame=_tiny(15, 2, labels).assign(text=lambda d: d["text"].str.lower()))
    return AuditContext(train=train, config=AuditConfig(), eval=ev, real=real)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_kind_declares_everything_about_itself(name: str) -> None:
    kind = KINDS[name]
    assert kind.name == name and kind.description.strip() and kind.recommendation.strip()
    for model in _models(kind.Evidence):
        assert isinstance(model, type) and issubclass(model, Evidence) and model is not Evidence, model
        assert model.model_config.get("extra") == "forbid"
    if kind.agreeing_verdicts:
        assert kind.agreeing_verdicts <= {"supported", "contradicted", "ambiguous"}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_check_runs_on_a_tiny_set_and_returns_typed_findings(
        name: str, tiny_ctx: AuditContext, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    check = REGISTRY[name]
    assert isinstance(check, Check)
    monkeypatch.chdir(tmp_path)
    assert check.missing(tiny_ctx) is None, "the tiny set has everything any check needs"
    found = check.run(tiny_ctx)
    assert isinstance(found, list)
    for f in found:
        assert isinstance(f, Finding) and f.check == name
        assert isinstance(f.evidence, _models(check.Evidence)), type(f.evidence)
        assert Finding.model_validate_json(f.model_dump_json()) == f  # findings.jsonl round trip
        for rid in f.rows:
            split = {"train": tiny_ctx.train, "eval": tiny_ctx.eval, "real": tiny_ctx.real}[f.split]
            assert split is not None and str(rid) in set(split.frame["id"].astype(str))
    assert capsys.readouterr() == ("", ""), "a check never prints"
    written = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()]
    cache = str(tiny_ctx.config.llm.cache_dir)
    assert all(w.startswith(cache + os.sep) for w in written), f"a check writes no file but the cache: {written}"


def test_a_check_that_cannot_apply_says_why(tiny_ctx: AuditContext) -> None:
    no_eval = AuditContext(train=tiny_ctx.train, config=tiny_ctx.config)
    assert REGISTRY["contamination"].missing(no_eval) == "needs --eval"
    one_label = AuditContext(train=Dataset(path=Path("t.csv"), frame=tiny_ctx.train.frame.assign(label="refund")),
                             config=tiny_ctx.config)
    for name in ("label_issue", "label_overlap", "conflicting_labels", "label_leak", "pilot_gap"):
        assert "two or more labels" in str(REGISTRY[name].missing(one_label)), name
    for name in ("exact_duplicate", "repeated_opening", "template_frame", "coverage_gap", "class_balance"):
        assert REGISTRY[name].missing(one_label) is None, name


def _names_used(tree: ast.AST) -> set[str]:
    """String constants the code uses as a kind's name: `f.check == "x"`, `f.check in ("x", ...)`,
    `KINDS["x"]`, `REGISTRY["x"]`, `Finding(check="x", ...)` and `name = "x"` in a Check class."""
    out: set[str] = set()

    def strings(node: ast.AST) -> list[str]:
        return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) and node.left.attr == "check":
            for comp in node.comparators:
                out.update(strings(comp))
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and \
                node.value.id in ("KINDS", "REGISTRY"):
            out.update(strings(node.slice))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Finding":
            out.update(s for kw in node.keywords if kw.arg == "check" for s in strings(kw.value))
        elif isinstance(node, ast.ClassDef) and any(getattr(b, "id", "").endswith(("Check", "Kind", "_Dedup"))
                                                    for b in node.bases):
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and any(getattr(t, "id", None) == "name" for t in stmt.targets):
                    out.update(strings(stmt.value))
    return out


def test_every_check_name_used_anywhere_is_registered() -> None:
    used: dict[str, list[str]] = {}
    for path in SOURCE.rglob("*.py"):
        for name in _names_used(ast.parse(path.read_text(encoding="utf-8"))):
            used.setdefault(name, []).append(str(path.relative_to(SOURCE)))
    assert len(used) >= len(REGISTRY), "the scan found the registered names"
    unknown = {name: files for name, files in used.items() if name not in KINDS}
    assert not unknown, f"check names used but not registered: {unknown}"


def test_the_scan_would_catch_an_unregistered_name() -> None:
    code = 'x = [f for f in fs if f.check == "cross_split_duplicate"]\ny = KINDS["label_issues"]\n'
    assert _names_used(ast.parse(code)) == {"cross_split_duplicate", "label_issues"}
