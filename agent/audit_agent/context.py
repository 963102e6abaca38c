"""What a check sees: a run's loaded data (`AuditData`, dataset.py) plus the shared features computed
from it, lazily and once (`ctx.features`, features/)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from audit_agent.dataset import AuditData
from audit_agent.features import Features


@dataclass
class AuditContext(AuditData):
    """What a check sees: the training set, the optional eval and real splits, the config,
    and lazily computed shared features (computed once, reused by every check)."""

    @cached_property
    def features(self) -> Features:
        return Features(self)
