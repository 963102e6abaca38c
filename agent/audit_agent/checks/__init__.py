"""Kinds of findings and the deterministic checks: one class per kind, registered by its `name`.

Importing this package imports every module in it, which registers every kind (`KINDS`) and every
deterministic check (`REGISTRY`); see base.py for what a kind declares.
"""

from __future__ import annotations

import importlib
import pkgutil

from audit_agent.checks.base import KINDS, REGISTRY, Check, FindingKind

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "base":
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["KINDS", "REGISTRY", "Check", "FindingKind"]
