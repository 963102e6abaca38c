"""The embedded server's process: llama-cpp-python's OpenAI-compatible server with grammar-first
greedy sampling installed (`grammar_first.py`). Takes exactly `python -m llama_cpp.server`'s
arguments; `EmbeddedServer` starts it as `python -m audit_agent.llm.llama_server ...`."""

from __future__ import annotations

import sys

from audit_agent.llm.grammar_first import install


def main() -> None:
    if install():
        print("audit-agent: grammar-first greedy sampling on", file=sys.stderr, flush=True)
    else:
        print("audit-agent: grammar-first sampling not supported by this llama-cpp-python; stock sampler",
              file=sys.stderr, flush=True)
    from llama_cpp.server.__main__ import main as serve

    serve()


if __name__ == "__main__":
    main()
