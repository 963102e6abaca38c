"""The `audit-agent` command line: each command parses its arguments, calls the library (api.py,
jobs/, review/) and prints; report/ writes the files."""

from __future__ import annotations

import os
import sys

import typer

from audit_agent.cli import llm_jobs, review, run  # noqa: F401  (each module registers its commands)
from audit_agent.cli.common import app, console

__all__ = ["app", "entry"]

ORDER = ("run", "checks", "guide", "paraphrase", "agree", "apply", "diff", "stress")
"""How `audit-agent --help` lists the commands: the audit first, then the jobs, then the review loop."""


def _name(command: typer.models.CommandInfo) -> str:
    return command.name or (command.callback.__name__ if command.callback else "")


app.registered_commands.sort(key=lambda c: ORDER.index(_name(c)) if _name(c) in ORDER else len(ORDER))


def entry() -> None:
    """Console-script entry point: no traceback reaches the user unless AUDIT_AGENT_DEBUG=1."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("AUDIT_AGENT_DEBUG") == "1":
            raise
        console.print(f"[bold red]internal error:[/bold red] {type(exc).__name__}: {str(exc)[:300]} "
                      "(rerun with AUDIT_AGENT_DEBUG=1 for the traceback)", highlight=False)
        sys.exit(4)
