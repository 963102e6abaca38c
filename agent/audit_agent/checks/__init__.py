"""Deterministic checks: pure functions from an `AuditContext` to a list of `Finding`s.

Importing this package registers every check in `registry.REGISTRY`.
"""

from __future__ import annotations

import importlib
import pkgutil

from audit_agent.checks.registry import REGISTRY, CheckSpec, check

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "registry":
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["REGISTRY", "CheckSpec", "check"]
