"""Rendering of findings into report.md, findings.jsonl, summary.json, plots and review files.

The report has no logic of its own: every number it shows comes from a finding or the run summary.
"""
