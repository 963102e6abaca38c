"""`LiteLLMClient`: structured calls through litellm, with retries, a disk cache and a budget.

Two ways to force a reply into a pydantic schema:
- `grammar`: litellm.completion with `response_format={"type": "json_object", "schema": ...}` (llama.cpp
  constrains decoding with a grammar built from the schema), validated here with pydantic;
- `tools` / `json_schema`: instructor's modes for OpenAI-style providers.
Every request is retried with exponential backoff on timeouts, 429, 5xx, connection errors and
unparseable or schema-violating replies. The API key is only held in memory and scrubbed from errors.
"""

from __future__ import annotations

import os

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # no network fetch of the price list at import

import functools
import json
import logging
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Literal, TypeVar

with warnings.catch_warnings():  # litellm's import warns about its own pydantic types
    warnings.simplefilter("ignore")
    import instructor
    import litellm
    import openai
from instructor.core.exceptions import IncompleteOutputException, InstructorRetryException
from pydantic import BaseModel, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from audit_agent.errors import LLMError
from audit_agent.llm.base import BudgetExhausted, CallFailed, Usage
from audit_agent.llm.budget import Budget
from audit_agent.llm.cache import CallCache, cache_key
from audit_agent.llm.embedded import EmbeddedServer
from audit_agent.llm.prompts import render_prompt

T = TypeVar("T", bound=BaseModel)
Mode = Literal["grammar", "tools", "json_schema"]

warnings.filterwarnings("ignore", message=".*ReadOnly.*qualifier", category=UserWarning)  # litellm types
litellm.telemetry = False
litellm.suppress_debug_info = True
litellm.turn_off_message_logging = True
litellm.set_verbose = False
for _name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm", "instructor", "httpx"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)

_RETRY_TEMPERATURE = 0.7  # after an unparseable reply, greedy decoding would only repeat it
_MAX_WAIT_SECONDS = 60.0


class _BadReply(Exception):
    """The model answered, but not with JSON that fits the schema (retryable)."""


class _ServerDied(Exception):
    """The embedded server process is gone: retrying the same port is pointless."""


class _Fatal(Exception):
    """The model cannot be used at all (authentication, unknown model): retrying will not help."""


def _status(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) else None


_NO_KEY_SIGNS = ("Missing credentials", "api_key client option must be set")
"""How the OpenAI SDK (through litellm) says that no key was given at all."""


def _classify(exc: BaseException) -> BaseException:
    """Map litellm/openai/instructor errors to _BadReply, _Fatal, or the (retryable/final) original."""
    if isinstance(exc, InstructorRetryException):
        cause = exc.__cause__ or exc.__context__
        if cause is None or isinstance(cause, ValidationError | json.JSONDecodeError):
            return _BadReply(f"reply does not fit the schema: {cause or exc}")
        return _classify(cause)
    if isinstance(exc, ValidationError | json.JSONDecodeError | IncompleteOutputException):  # cut at max_tokens
        return _BadReply(f"reply does not fit the schema: {exc}")
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError | openai.NotFoundError):
        return _Fatal(f"{type(exc).__name__}: {exc}")
    if any(sign in str(exc) for sign in _NO_KEY_SIGNS):  # raised before any request: retrying cannot help
        return _Fatal("no API key for this provider: set llm.api_key_env to the name of the environment "
                      "variable that holds it")
    return exc


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, _BadReply | openai.APITimeoutError | openai.APIConnectionError | openai.RateLimitError):
        return True
    status = _status(exc)
    return status is not None and (status >= 500 or status in (408, 409, 429))


class LiteLLMClient:
    """Implements `LLMClient` for any litellm model (including the embedded llama.cpp server)."""

    def __init__(self, *, model: str, model_id: str, description: str, budget: Budget,
                 cache: CallCache | None = None, api_base: str | None = None, api_key: str | None = None,
                 mode: Mode = "tools", temperature: float = 0.0, max_tokens: int = 160,
                 request_timeout: float = 120.0, retries: int = 4, max_concurrency: int = 1,
                 local: bool = False, backoff_seconds: float = 1.0) -> None:
        self.model = model
        self.model_id = model_id
        self._description = description
        self.budget = budget
        self.cache = cache
        self.api_base = api_base
        self._api_key = api_key
        self.mode: Mode = mode
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.request_timeout = request_timeout
        self.retries = retries
        self.max_concurrency = max_concurrency
        self.local = local
        self.backoff_seconds = backoff_seconds
        self.server: EmbeddedServer | None = None  # set by the factory for the embedded model
        self._restarts = 0
        self.notes: list[str] = []
        self._usage = Usage()
        self._lock = threading.Lock()
        completion = functools.partial(litellm.completion, max_retries=0, num_retries=0)
        self._instructor = None if mode == "grammar" else instructor.from_litellm(
            completion, mode=instructor.Mode.TOOLS if mode == "tools" else instructor.Mode.JSON_SCHEMA)

    @property
    def description(self) -> str:
        return self._description

    @property
    def usage(self) -> Usage:
        """A snapshot of what this client has spent."""
        with self._lock:
            return replace(self._usage)

    # -- public calls ----------------------------------------------------------------------
    def structured(self, prompt: str, variables: Mapping[str, Any], schema: type[T], *,
                   max_tokens: int | None = None) -> T:
        """Render, ask, validate; cached. Raises BudgetExhausted before a request the budget does not
        allow, CallFailed after retries, LLMError when the model cannot be used at all."""
        messages = render_prompt(prompt, dict(variables))
        limit = max_tokens or self.max_tokens
        schema_json = schema.model_json_schema()
        key = cache_key(model_id=self.model_id, messages=messages, schema=schema_json,
                        temperature=self.temperature, max_tokens=limit, mode=self.mode)
        if self.cache is not None:
            stored = self.cache.get(key)
            if stored is not None:
                try:
                    result = schema.model_validate_json(stored)
                except ValidationError:
                    pass  # stale entry: ask again and overwrite it
                else:
                    with self._lock:
                        self._usage.cached += 1
                    return result
        try:
            try:
                result = self._with_retries(messages, schema, schema_json, limit)
            except _ServerDied:
                self._restart_server()
                result = self._with_retries(messages, schema, schema_json, limit)
        except BudgetExhausted:
            raise
        except _ServerDied:
            raise LLMError(f"{self.model}: the embedded model server exited again after a restart"
                           f"{self._server_log()}") from None
        except _Fatal as exc:
            raise LLMError(f"{self.model}: {self._scrub(str(exc))}") from None
        except Exception as exc:
            with self._lock:
                self._usage.failed += 1
            reason = self._scrub(f"{type(exc).__name__}: {exc}")
            raise CallFailed(f"{self.model}, prompt '{prompt}': {reason}") from None
        if self.cache is not None:
            self.cache.put(key, model_id=self.model_id, prompt=prompt, schema_name=schema.__name__,
                           reply_json=result.model_dump_json())
        return result

    def structured_many(self, prompt: str, variables_list: Sequence[Mapping[str, Any]], schema: type[T], *,
                        max_tokens: int | None = None) -> list[T | CallFailed | BudgetExhausted]:
        """`structured` over many inputs with up to `max_concurrency` requests in flight; results in
        input order, CallFailed / BudgetExhausted in place of a reply."""

        def one(variables: Mapping[str, Any]) -> T | CallFailed | BudgetExhausted:
            try:
                return self.structured(prompt, variables, schema, max_tokens=max_tokens)
            except (CallFailed, BudgetExhausted) as exc:
                return exc

        if self.max_concurrency <= 1 or len(variables_list) <= 1:
            return [one(v) for v in variables_list]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(variables_list)),
                                thread_name_prefix="llm") as pool:
            return list(pool.map(one, variables_list))

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()

    # -- one logical call = up to retries + 1 requests -----------------------------------------
    def _with_retries(self, messages: list[dict[str, str]], schema: type[T], schema_json: dict[str, Any],
                      limit: int) -> T:
        bad_reply_seen = False

        def wait(state: RetryCallState) -> float:
            exp = self.backoff_seconds * (2 ** (state.attempt_number - 1))
            exc = state.outcome.exception() if state.outcome is not None else None
            return min(max(exp, _retry_after(exc) or 0.0), _MAX_WAIT_SECONDS)

        retrying = Retrying(stop=stop_after_attempt(self.retries + 1), wait=wait,
                            retry=retry_if_exception(_retryable), reraise=True)
        for attempt in retrying:
            with attempt:
                temperature = max(self.temperature, _RETRY_TEMPERATURE) if bad_reply_seen else self.temperature
                try:
                    return self._request(messages, schema, schema_json, limit, temperature)
                except _BadReply:
                    bad_reply_seen = True
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _restart_server(self) -> None:
        """Start the embedded server again, once per client; what was judged is in the cache."""
        server = self.server
        if server is None or self._restarts >= 1:
            raise _ServerDied()
        self._restarts += 1
        last = self._server_log()
        server.stop()
        server.start()
        self.api_base = server.api_base
        with self._lock:
            self._usage.restarts += 1
        self.notes.append(f"the embedded model server exited mid-run and was restarted{last}")

    def _server_log(self) -> str:
        server = self.server
        line = server.last_log_line() if server is not None else ""
        return f" (its last log line: {line})" if line else ""

    def _request(self, messages: list[dict[str, str]], schema: type[T], schema_json: dict[str, Any],
                 limit: int, temperature: float) -> T:
        if self.server is not None and not self.server.is_running():
            raise _ServerDied()
        estimate = len(json.dumps(messages)) // 3 + limit
        reservation = self.budget.reserve(estimate, self._cost_estimate(estimate - limit, limit))
        tokens, cost = 0, 0.0
        started = time.monotonic()
        try:
            kwargs: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in messages],
                                      "temperature": temperature, "max_tokens": limit,
                                      "timeout": self.request_timeout}
            if self.api_base:
                kwargs["api_base"] = self.api_base
            if self._api_key:
                kwargs["api_key"] = self._api_key
            try:
                if self._instructor is None:
                    response = litellm.completion(
                        **kwargs, max_retries=0, num_retries=0,
                        response_format={"type": "json_object", "schema": schema_json})
                    tokens, cost = self._account(response)
                    content = response.choices[0].message.content or ""
                    # llama.cpp's JSON grammar lets a raw newline into a string: accept it, not retry
                    return schema.model_validate(json.loads(content, strict=False))
                result, response = self._instructor.chat.completions.create_with_completion(
                    response_model=schema, max_retries=0, **kwargs)
                tokens, cost = self._account(response)
                return schema.model_validate(result.model_dump())  # instructor returns a subclass
            except Exception as exc:
                raise _classify(exc) from None
        finally:
            self.budget.settle(reservation, tokens=tokens, cost_usd=cost)
            with self._lock:
                self._usage.calls += 1
                self._usage.seconds += time.monotonic() - started

    def _account(self, response: Any) -> tuple[int, float]:
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        cost = 0.0
        if not self.local:
            try:
                cost = float(litellm.completion_cost(completion_response=response) or 0.0)
            except Exception:
                cost = 0.0  # litellm does not know this model's price
        with self._lock:
            self._usage.prompt_tokens += prompt_tokens
            self._usage.completion_tokens += completion_tokens
            self._usage.cost_usd += cost
        return prompt_tokens + completion_tokens, cost

    def _cost_estimate(self, prompt_tokens: int, completion_tokens: int) -> float:
        if self.local:
            return 0.0
        try:
            p, c = litellm.cost_per_token(model=self.model, prompt_tokens=prompt_tokens,
                                          completion_tokens=completion_tokens)
            return float(p + c)
        except Exception:
            return 0.0

    def _scrub(self, text: str) -> str:
        """One line, bounded, without the API key."""
        if self._api_key:
            text = text.replace(self._api_key, "***")
        text = " ".join(text.split())
        return text[:400]


def _retry_after(exc: BaseException | None) -> float | None:
    """Seconds from a 429's Retry-After header, when the provider sent one."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        return float(headers.get("retry-after"))
    except (TypeError, ValueError):
        return None
