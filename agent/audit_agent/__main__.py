"""`python -m audit_agent` runs the CLI."""

from audit_agent.cli import entry

entry()
