"""The embedded server's process: llama-cpp-python's OpenAI-compatible server with grammar-first
greedy sampling installed (`grammar_first.py`) and the chat formats the embedded models need
registered. Takes exactly `python -m llama_cpp.server`'s arguments; `EmbeddedServer` starts it as
`python -m audit_agent.llm.llama_server ...` (with AUDIT_AGENT_GRAMMAR_FIRST=0: stock sampler)."""

from __future__ import annotations

import os
import sys
from typing import Any

from audit_agent.llm.embedded_models import GEMMA3_CHAT_FORMAT
from audit_agent.llm.grammar_first import install

GRAMMAR_FIRST_ENV = "AUDIT_AGENT_GRAMMAR_FIRST"


def format_gemma3(messages: list[dict[str, Any]], **kwargs: Any) -> Any:
    """Gemma 3's turn format with the system message at the top of the first user turn (as Gemma 3's
    own chat template does; llama-cpp-python's `gemma` format drops system messages). The tokenizer
    adds <bos>; the shared system prefix stays the start of every prompt, so its KV cache is reused."""
    from llama_cpp.llama_chat_format import ChatFormatterResponse

    system = "\n\n".join(str(m.get("content") or "").strip() for m in messages if m.get("role") == "system")
    prompt, first = "", True
    for message in messages:
        if message.get("role") == "system":
            continue
        role = "model" if message.get("role") == "assistant" else "user"
        content = str(message.get("content") or "").strip()
        if first and system:
            content = f"{system}\n\n{content}" if role == "user" else content
            if role != "user":
                prompt += f"<start_of_turn>user\n{system}<end_of_turn>\n"
        first = False
        prompt += f"<start_of_turn>{role}\n{content}<end_of_turn>\n"
    if first and system:  # a system message alone
        prompt = f"<start_of_turn>user\n{system}<end_of_turn>\n"
    return ChatFormatterResponse(prompt=prompt + "<start_of_turn>model\n", stop=["<end_of_turn>"])


def register_chat_formats() -> None:
    from llama_cpp.llama_chat_format import register_chat_format

    register_chat_format(GEMMA3_CHAT_FORMAT)(format_gemma3)


def main() -> None:
    register_chat_formats()
    if os.environ.get(GRAMMAR_FIRST_ENV, "1") == "0":
        print("audit-agent: stock sampler (grammar-first off)", file=sys.stderr, flush=True)
    elif install():
        print("audit-agent: grammar-first greedy sampling on", file=sys.stderr, flush=True)
    else:
        print("audit-agent: grammar-first sampling not supported by this llama-cpp-python; stock sampler",
              file=sys.stderr, flush=True)
    from llama_cpp.server.__main__ import main as serve

    serve()


if __name__ == "__main__":
    main()
