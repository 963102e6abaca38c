"""Partitioned execution of the row-parallel audit work (`audit-agent run --engine ray`).

`run.run_audit_engine(opts, config, console, engine=None)` is the entry point; `base.Engine` is the
protocol an engine implements (`LocalEngine` in-process, `ray_engine.RayEngine` on a Ray cluster).
See docs/architecture.md, "Engines".
"""
