"""Config: defaults, the documented example, overrides and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from audit_agent.config import AuditConfig, load_config
from audit_agent.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"


def _keys(model: type, prefix: str = "") -> set[str]:
    from pydantic import BaseModel

    out = set()
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out |= _keys(ann, f"{prefix}{name}.")
        else:
            out.add(f"{prefix}{name}")
    return out


def _yaml_keys(data: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in data.items():
        if isinstance(value, dict):
            out |= _yaml_keys(value, f"{prefix}{key}.")
        else:
            out.add(f"{prefix}{key}")
    return out


def test_example_documents_every_setting_with_its_default() -> None:
    documented = _yaml_keys(yaml.safe_load(EXAMPLE.read_text()))
    assert documented == _keys(AuditConfig)
    assert load_config(EXAMPLE) == AuditConfig()


def test_overrides_apply_and_none_is_ignored() -> None:
    cfg = load_config(None, {"llm.model": "openai/gpt-4o-mini", "seed": None, "llm.budget.max_calls": 7})
    assert cfg.llm.model == "openai/gpt-4o-mini"
    assert cfg.llm.budget.max_calls == 7
    assert cfg.seed == 0


@pytest.mark.parametrize(("content", "expected"), [
    ("llm:\n  temperature: 5\n", "'llm.temperature'"),
    ("llm:\n  modle: x\n", "'llm.modle'"),
    ("- a\n- b\n", "expected a mapping"),
    ("llm: [\n", "not valid YAML"),
])
def test_bad_config_is_one_line(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
