"""Prompt templates (jinja2 files in prompts/) rendered into chat messages.

A template is plain text split into messages by header lines `### system` and `### user`
(and `### assistant` for few-shot turns). Row text goes in as a variable, never into the template.
Header lines are replaced by a per-process secret marker *before* rendering, so text inside a
variable (a hostile row that contains "### system") can never open a message of its own.
"""

from __future__ import annotations

import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

_HEADER = re.compile(r"^### (system|user|assistant)\s*$", re.MULTILINE)
_NONCE = secrets.token_hex(8)
_MARKER = re.compile(rf"\[\[msg-{_NONCE}-(system|user|assistant)\]\]")


def prompts_dir() -> Path:
    """prompts/ inside the installed wheel, else the repository's top-level prompts/."""
    packaged = Path(__file__).resolve().parent.parent / "prompts"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "prompts"


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(prompts_dir())),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                              trim_blocks=True, lstrip_blocks=True, autoescape=False)


@lru_cache(maxsize=64)
def _template(name: str) -> jinja2.Template:
    env = _env()
    assert env.loader is not None
    source, _, _ = env.loader.get_source(env, f"{name}.jinja")
    marked = _HEADER.sub(lambda m: f"[[msg-{_NONCE}-{m.group(1)}]]", source)
    return env.from_string(marked)


def render_prompt(name: str, variables: dict[str, Any]) -> list[dict[str, str]]:
    """Render prompts/<name>.jinja into a list of {"role", "content"} messages."""
    text = _template(name).render(**variables)
    parts = _MARKER.split(text)
    messages = []
    for role, content in zip(parts[1::2], parts[2::2], strict=True):
        content = content.strip()
        if content:
            messages.append({"role": role, "content": content})
    if not messages:
        raise ValueError(f"prompt template '{name}' has no '### system' / '### user' sections")
    return messages
