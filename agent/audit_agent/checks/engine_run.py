"""The `engine` finding a partitioned run adds (engine/run.py makes it): where the work ran and which
checks saw a sample rather than every row. Declared here so it has a registry entry like every kind."""

from __future__ import annotations

from pydantic import Field

from audit_agent.checks.base import FindingKind
from audit_agent.findings import Evidence, Finding


class EngineEvidence(Evidence):
    engine: str
    workers: int
    partitions: int
    rows: int
    checks_on_sample: list[str]
    sample_rows: int
    stage_seconds: dict[str, float]
    stage_started: dict[str, float] = Field(default_factory=dict)  # stage -> wall-clock start (epoch seconds)


class EngineRun(FindingKind):
    name = "engine"
    description = "Where a partitioned run's row-parallel work ran, and which checks read a sample"
    recommendation = ("Checks listed as run on a sample saw a uniform sample of the rows; raise engine.sample_rows "
                      "to widen it.")
    Evidence = EngineEvidence

    def subject(self, f: Finding) -> str | None:
        return "engine"
