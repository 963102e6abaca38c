"""The check registry: every deterministic check registers itself here by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from audit_agent.dataset import AuditContext
from audit_agent.findings import Finding

CheckFunc = Callable[[AuditContext], list[Finding]]


@dataclass(frozen=True)
class CheckSpec:
    """A registered check. `needs` lists what the run must have for the check to apply:
    "eval", "real", "real_labels", "classification", "labels"."""

    name: str
    func: CheckFunc
    needs: tuple[str, ...] = ()
    description: str = ""

    def missing(self, ctx: AuditContext) -> str | None:
        """Why this check cannot run on `ctx`, or None when it can."""
        for need in self.needs:
            if need == "eval" and ctx.eval is None:
                return "needs --eval"
            if need == "real" and ctx.real is None:
                return "needs --real"
            if need == "real_labels" and (ctx.real is None or not ctx.real.has_labels):
                return "needs labelled --real rows"
            if need == "labels" and not ctx.train.has_labels:
                return "needs a label column"
            if need == "classification" and ctx.train.kind != "classification":
                return "needs class labels (this data has target texts)"
        return None


REGISTRY: dict[str, CheckSpec] = {}


def check(name: str, *, needs: tuple[str, ...] = (), description: str = "") -> Callable[[CheckFunc], CheckFunc]:
    """Register `func` as the check `name`. The function must be pure: context in, findings out."""

    def wrap(func: CheckFunc) -> CheckFunc:
        if name in REGISTRY:
            raise ValueError(f"check '{name}' registered twice")
        REGISTRY[name] = CheckSpec(name, func, needs, description or (func.__doc__ or "").strip().split("\n")[0])
        return func

    return wrap
