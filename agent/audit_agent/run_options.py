"""What a run is asked to do besides its checks, shared by the library API (api.py) and the LLM job
runner (jobs/runner.py): which LLM jobs run (`LLMJobs`) and how progress is reported (`Progress`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Progress = Callable[[str, str, int, int | None], None]
"""`progress(stage, description, done, total)`; stages: load, checks, judge, guide, paraphrase."""


def no_progress(stage: str, description: str, done: int, total: int | None) -> None:
    """The default progress callback: says nothing."""


@dataclass
class LLMJobs:
    """Which LLM jobs `audit` runs besides the judge."""

    rewrite_guide: bool = True
    paraphrase_rows: int = 8
    paraphrase_per_row: int = 2
    guide_name: str | None = None
