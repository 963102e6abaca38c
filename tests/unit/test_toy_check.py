"""Adding a check is one module: the toy check printed in docs/architecture.md, taken from that page
and imported as a module of its own, reaches the registry, `audit()`, the report and the issue table
with nothing else edited."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from audit_agent import findings as findings_module
from audit_agent.api import audit
from audit_agent.checks import KINDS, REGISTRY

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"


def _toy_code() -> str:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"<!-- toy-check -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert match, "docs/architecture.md must show the toy check after <!-- toy-check -->"
    return match.group(1)


@pytest.fixture
def toy_check(tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "all_caps.py"
    path.write_text(_toy_code(), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("audit_agent.checks.all_caps", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    try:
        yield "all_caps"
    finally:  # leave the registries as they were for the other tests
        for registry in (KINDS, REGISTRY, findings_module._EVIDENCE):
            registry.pop("all_caps", None)
        sys.modules.pop(spec.name, None)


def test_the_documented_toy_check_works_end_to_end(toy_check: str, tmp_path: Path) -> None:
    assert toy_check in REGISTRY and REGISTRY[toy_check].description
    rows = [("WHERE IS MY REFUND", "refund"), ("refund please", "refund"), ("my card is lost", "card"),
            ("CARD STOLEN HELP", "card"), ("cannot log in", "login"), ("login code expired", "login")] * 4
    frame = pd.DataFrame(rows, columns=["text", "label"])
    result = audit(frame, llm=False, checks=[toy_check, "exact_duplicate"])
    found = result.findings[result.findings["check"] == toy_check]
    assert len(found) == 1 and found["n_rows"].iloc[0] == 8
    shouted = {str(i) for i, t in enumerate(frame["text"]) if t.isupper()}
    assert set(found["rows"].iloc[0]) == shouted
    issues = result.issues
    assert set(issues.loc[issues["is_all_caps_issue"], "id"]) == shouted
    assert (issues.loc[~issues["is_all_caps_issue"], "all_caps_score"] == 0).all()
    paths = result.write(tmp_path / "out")
    report = paths["report"].read_text(encoding="utf-8")
    assert "### all_caps" in report and "Lower-case the shouting rows" in report
    line = paths["findings"].read_text(encoding="utf-8").splitlines()
    assert any('"check":"all_caps"' in x.replace(" ", "") and '"share":0.3333' in x.replace(" ", "") for x in line)
