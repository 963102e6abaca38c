"""Test doubles for the LLM boundary: `FakeLLM` implements `audit_agent.llm.base.LLMClient`.

    def responder(prompt: str, variables: dict, schema: type) -> BaseModel | dict:
        return schema(verdict="ok", reason="fine")

    llm = FakeLLM(responder)                      # scripted replies
    llm = FakeLLM(responder, max_calls=3)         # 4th call raises BudgetExhausted (no call made)
    llm = FakeLLM(responder, fail=lambda p, v: v["id"] == 7)   # that call raises CallFailed
    llm.calls                                     # [(prompt, variables, schema), ...] of calls made
    llm.usage.calls / llm.usage.failed

The responder may also return a dict (validated into `schema`) or raise `CallFailed` /
`BudgetExhausted` itself. `FakeLLM.constant(obj)` always answers `obj`; `FakeLLM.sequence([...])`
answers the items in order (an Exception item is raised instead).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from audit_agent.llm.base import BudgetExhausted, CallFailed, Usage

T = TypeVar("T", bound=BaseModel)

Responder = Callable[[str, dict[str, Any], type[BaseModel]], BaseModel | dict[str, Any]]


class FakeLLM:
    """Scripted, thread-safe stand-in for a real LLM client; counts and records every call."""

    def __init__(self, responder: Responder, *, max_calls: int | None = None,
                 fail: Callable[[str, dict[str, Any]], bool] | None = None,
                 description: str = "fake LLM (tests) - no data leaves the process") -> None:
        self._responder = responder
        self._max_calls = max_calls
        self._fail = fail
        self._description = description
        self._usage = Usage()
        self._lock = threading.Lock()
        self.calls: list[tuple[str, dict[str, Any], type[BaseModel]]] = []
        self.max_tokens_seen: list[int | None] = []

    @classmethod
    def constant(cls, reply: BaseModel | dict[str, Any], **kwargs: Any) -> FakeLLM:
        """Always answer `reply`."""
        return cls(lambda _p, _v, _s: reply, **kwargs)

    @classmethod
    def sequence(cls, replies: Iterable[BaseModel | dict[str, Any] | Exception], **kwargs: Any) -> FakeLLM:
        """Answer the items in order; an Exception item is raised for that call; running out raises CallFailed."""
        queue = list(replies)
        lock = threading.Lock()

        def respond(_p: str, _v: dict[str, Any], _s: type[BaseModel]) -> BaseModel | dict[str, Any]:
            with lock:
                if not queue:
                    raise CallFailed("FakeLLM.sequence: no scripted reply left")
                item = queue.pop(0)
            if isinstance(item, Exception):
                raise item
            return item

        return cls(respond, **kwargs)

    @property
    def description(self) -> str:
        return self._description

    @property
    def usage(self) -> Usage:
        return self._usage

    @property
    def n_calls(self) -> int:
        """Calls that reached the responder (budget refusals are not counted)."""
        return len(self.calls)

    def structured(self, prompt: str, variables: Mapping[str, Any], schema: type[T], *,
                   max_tokens: int | None = None) -> T:
        """Answer from the responder, validated into `schema`, like a real client."""
        variables = dict(variables)
        with self._lock:
            if self._max_calls is not None and len(self.calls) >= self._max_calls:
                raise BudgetExhausted(f"FakeLLM: max_calls={self._max_calls} reached")
            self.calls.append((prompt, variables, schema))
            self.max_tokens_seen.append(max_tokens)
            self._usage.calls += 1
        try:
            if self._fail is not None and self._fail(prompt, variables):
                raise CallFailed(f"FakeLLM: scripted failure for prompt '{prompt}'")
            reply = self._responder(prompt, variables, schema)
            if isinstance(reply, schema):
                return reply
            data = reply.model_dump() if isinstance(reply, BaseModel) else reply
            try:
                return schema.model_validate(data)
            except ValidationError as exc:
                raise CallFailed(f"FakeLLM: reply does not fit {schema.__name__}: {exc}") from None
        except CallFailed:
            with self._lock:
                self._usage.failed += 1
            raise

    def structured_many(self, prompt: str, variables_list: Sequence[Mapping[str, Any]], schema: type[T], *,
                        max_tokens: int | None = None) -> list[T | CallFailed | BudgetExhausted]:
        """`structured` over many inputs, results in input order; a CallFailed or BudgetExhausted
        comes back in place of the reply (once the budget is spent, every later item gets it)."""
        results: list[T | CallFailed | BudgetExhausted] = []
        for variables in variables_list:
            try:
                results.append(self.structured(prompt, variables, schema, max_tokens=max_tokens))
            except (CallFailed, BudgetExhausted) as exc:
                results.append(exc)
        return results


def run_traced(ctx, findings, client, *, trace_path, **kwargs):  # type: ignore[no-untyped-def]
    """Run the judge's agent loop with its trace streamed to `trace_path` (as `audit-agent run` does)."""
    from audit_agent.jobs.judge import run_agent
    from audit_agent.report.trace_file import TraceFile

    with TraceFile(trace_path) as sink:
        return run_agent(ctx, findings, client, trace_sink=sink, **kwargs)


def evidence(model, **fields):  # type: ignore[no-untyped-def]
    """A valid evidence dict for `model` (an Evidence subclass): `fields` as given, every other required
    field filled with a blank of its type (0, "", [], {}, None, the first Literal value, ...)."""
    from pydantic import BaseModel

    def blank(annotation):  # type: ignore[no-untyped-def]
        import types
        import typing

        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is typing.Literal:
            return args[0]
        if origin in (typing.Union, types.UnionType):
            return None if type(None) in args else blank(args[0])
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return evidence(annotation)
        return {int: 0, float: 0.0, str: "", bool: False, list: [], dict: {}, tuple: ()}.get(origin or annotation)

    out = {}
    for name, info in model.model_fields.items():
        if name in fields:
            out[name] = fields[name]
        elif info.is_required():
            out[name] = blank(info.annotation)
    return out


def evidence_of(check: str, **fields):  # type: ignore[no-untyped-def]
    """A valid evidence dict for a finding of `check`: the first of its kind's evidence models that has
    every field in `fields`, the rest filled with blanks (see `evidence`)."""
    import typing

    from audit_agent.checks import KINDS

    model = KINDS[check].Evidence
    models = typing.get_args(model) or (model,)
    for m in models:
        if set(fields) <= set(m.model_fields):
            return evidence(m, **fields)
    raise KeyError(f"no evidence model of {check} has {sorted(fields)}")
