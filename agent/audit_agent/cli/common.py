"""What every command shares: the typer app, consoles, option types, config loading, errors,
the progress display."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from audit_agent import __version__
from audit_agent.config import AuditConfig, load_config
from audit_agent.errors import AuditError

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

app = typer.Typer(
    name="audit-agent",
    help="Audit a (synthetic) training set before you fine-tune a small model on it: duplicates, label "
         "problems, template shortcuts, leaking phrases, missing messy inputs and the gap to real traffic.",
    no_args_is_help=True, add_completion=False, rich_markup_mode="rich", pretty_exceptions_enable=False,
)
console = Console(stderr=True)
INCOMPLETE = 5
"""Exit code of a run in which a check crashed (the verdict is 'incomplete')."""
out_console = Console()

DataArg = Annotated[Path, typer.Argument(help="Training data: CSV, TSV, JSONL, JSON, Parquet, OpenAI chat "
                                               "JSONL or Alpaca JSON/JSONL.", show_default=False)]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder for the report and output files.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML settings (see config.example.yaml).")]
TextCol = Annotated[str | None, typer.Option(help="Column with the input text (default: auto-detect).")]
LabelCol = Annotated[str | None, typer.Option(help="Column with the label or target text (default: auto-detect).")]
IdCol = Annotated[str | None, typer.Option(help="Column with row ids (default: 0-based row position).")]
TaskCol = Annotated[str | None, typer.Option(help="Column with a task/domain name (default: auto-detect).")]
EvalOpt = Annotated[Path | None, typer.Option("--eval", help="The test split you plan to score on.")]
RealOpt = Annotated[Path | None, typer.Option("--real", help="A small batch (30-50 rows) of real user inputs; "
                                                              "labels optional.")]
GuideOpt = Annotated[Path | None, typer.Option("--guide", help="Current annotation guide (markdown or YAML).")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Any litellm model, e.g. openai/gpt-4o-mini or "
                                                               "ollama/llama3.1 (default: the embedded local model).")]
ApiBaseOpt = Annotated[str | None, typer.Option("--api-base", help="Base URL of a self-hosted or OpenAI-compatible "
                                                                     "server for --model, e.g. "
                                                                     "http://127.0.0.1:8000/v1 (a local one needs "
                                                                     "no key).")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed for sampling (default 0).")]


def version_callback(value: bool) -> None:
    if value:
        out_console.print(f"audit-agent {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True,
                                               help="Show the version and exit.")] = False) -> None:
    """audit-agent: catch the traps in training data before fine-tuning."""


def make_config(path: Path | None, **overrides: Any) -> AuditConfig:
    return load_config(path, {k.replace("__", "."): v for k, v in overrides.items()})


def fail(exc: AuditError) -> None:
    console.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


@contextmanager
def command_errors(interrupted: str = "") -> Iterator[None]:
    """An `AuditError` ends the command with its message and exit code, Ctrl-C with exit code 130
    (after printing `interrupted`, when given)."""
    try:
        yield
    except AuditError as exc:
        fail(exc)
    except KeyboardInterrupt:
        if interrupted:
            console.print(interrupted, soft_wrap=True)
        raise typer.Exit(130) from None


class RichProgress:
    """The library's progress callback shown as rich progress bars (one per stage)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, stage: str, description: str, done: int, total: int | None) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(description, total=total)
        task = self.tasks[stage]
        if stage == "judge" and total is None and done:
            self.progress.update(task, advance=done, description=description)
        else:
            self.progress.update(task, completed=done, total=total, description=description)


def progress_bars() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False,
                    disable=not console.is_terminal)
