"""`open_client(config)`: the one way the pipeline gets an LLMClient (embedded model or a provider)."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from audit_agent.config import AuditConfig
from audit_agent.errors import LLMError
from audit_agent.llm.base import LLMClient

if TYPE_CHECKING:
    from audit_agent.llm.budget import Budget

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
_PROVIDER_HOSTS = {"openai": "api.openai.com", "anthropic": "api.anthropic.com", "gemini": "generativelanguage.googleapis.com",
                   "mistral": "api.mistral.ai", "groq": "api.groq.com", "together_ai": "api.together.xyz",
                   "deepseek": "api.deepseek.com", "openrouter": "openrouter.ai", "ollama": "localhost:11434",
                   "ollama_chat": "localhost:11434"}


_QUANT = re.compile(r"^(.+?)[.-]((?:q|iq|f|bf)\d\w*)$", re.IGNORECASE)


def _embedded_name(file_name: str) -> str:
    """'SmolLM2-135M-Instruct.Q4_1.gguf' -> 'SmolLM2-135M-Instruct (Q4_1)',
    'gemma-3-270m-q4_k_m.gguf' -> 'gemma-3-270m (Q4_K_M)'."""
    stem = file_name.removesuffix(".gguf")
    match = _QUANT.match(stem)
    return f"{match.group(1)} ({match.group(2).upper()})" if match else stem


LOCAL_SERVER_KEY = "no-key-local-server"
"""Sent to a server on this machine when no key is configured: OpenAI-compatible servers without auth
(llama.cpp, vLLM, LM Studio) ignore it, and litellm's openai/ provider refuses to call without one."""


def is_local_base(api_base: str | None) -> bool:
    """Whether `api_base` points at this machine."""
    return bool(api_base) and (urlparse(str(api_base)).hostname or str(api_base)) in _LOCAL_HOSTS


def describe_remote(model: str, api_base: str | None) -> str:
    """Which model, and whether rows leave this machine."""
    if api_base:
        where = api_base.split("//", 1)[-1].split("/", 1)[0]
        local = is_local_base(api_base)
    else:
        provider = model.split("/", 1)[0] if "/" in model else "openai"
        where = _PROVIDER_HOSTS.get(provider, f"the {provider} API")
        local = where.split(":", 1)[0] in _LOCAL_HOSTS
    if local:
        return f"{model} via {where} - data stays on this machine"
    return f"{model} via {where} - rows are sent to this provider"


@contextlib.contextmanager
def open_client(config: AuditConfig, budget: Budget | None = None) -> Iterator[LLMClient]:
    """Yield a ready client: starts (and finally stops) the embedded server when `llm.model` is None,
    else talks to the configured provider with the key from `llm.api_key_env`. `budget`: spend from
    another client's budget (a second judge shares the run's one budget)."""
    from audit_agent.llm.budget import Budget
    from audit_agent.llm.cache import CallCache
    from audit_agent.llm.client import LiteLLMClient  # imports litellm (slow): only when a model is used
    from audit_agent.llm.embedded import EmbeddedServer

    llm = config.llm
    budget = budget if budget is not None else Budget(llm.budget, llm.retries)

    def make(**where: Any) -> LiteLLMClient:
        return LiteLLMClient(budget=budget, cache=CallCache(llm.cache_dir), temperature=llm.temperature,
                             max_tokens=llm.max_tokens, request_timeout=llm.request_timeout,
                             retries=llm.retries, backoff_seconds=llm.backoff_seconds, **where)

    if llm.model is None:
        with EmbeddedServer(model=llm.embedded_model, model_path=llm.embedded_model_path, n_ctx=llm.embedded_ctx,
                            n_threads=llm.embedded_threads, start_timeout=llm.embedded_start_timeout,
                            prompt_cache=llm.embedded_prompt_cache,
                            grammar_first=llm.embedded_grammar_first) as server:
            name = _embedded_name(server.model_file.name)
            client = make(
                model=server.litellm_model, model_id=server.model_id, api_base=server.api_base,
                api_key=LOCAL_SERVER_KEY, local=True, max_concurrency=1,
                mode="grammar" if llm.structured_mode == "auto" else llm.structured_mode,
                description=f"embedded {name} on 127.0.0.1 - data stays on this machine")
            client.server = server
            try:
                yield client
            finally:
                client.close()
        return
    api_key = None
    if llm.api_key_env:
        api_key = os.environ.get(llm.api_key_env)
        if not api_key:
            raise LLMError(f"environment variable {llm.api_key_env} (llm.api_key_env) is not set or empty")
    elif is_local_base(llm.api_base):
        api_key = LOCAL_SERVER_KEY
    description = describe_remote(llm.model, llm.api_base)
    client = make(
        model=llm.model, model_id=llm.model, api_base=llm.api_base, api_key=api_key,
        local="data stays on this machine" in description, max_concurrency=llm.max_concurrency,
        mode="tools" if llm.structured_mode == "auto" else llm.structured_mode,
        description=description)
    try:
        yield client
    finally:
        client.close()
