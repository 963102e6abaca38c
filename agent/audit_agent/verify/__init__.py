"""Deterministic verification of every LLM claim before it reaches a finding or the report."""
