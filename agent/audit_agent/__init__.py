"""audit-agent: catch the traps in (synthetic) training data before fine-tuning a small model.

    import audit_agent
    result = audit_agent.audit("train.csv", real="real.csv", llm=False)   # paths or DataFrames
    result.findings      # one row per finding (check, severity, rows, message, ...)
    result.issues        # one row per training row: <check>_score and is_<check>_issue
    result.write("audit")   # report.md, review.html, findings.jsonl, summary.json, ...
    audit_agent.stress("eval.csv", model=my_classifier)   # a callable or a litellm model: messy-input accuracy
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from audit_agent.api import AuditResult, Columns, LLMJobs, audit
    from audit_agent.stress_api import stress

__all__ = ["AuditResult", "Columns", "LLMJobs", "__version__", "audit", "stress"]


def __getattr__(name: str) -> Any:
    """The library API, imported on first use (so `import audit_agent` stays light)."""
    if name in ("audit", "AuditResult", "Columns", "LLMJobs"):
        from audit_agent import api

        return getattr(api, name)
    if name == "stress":
        from audit_agent.stress_api import stress

        return stress
    raise AttributeError(f"module 'audit_agent' has no attribute {name!r}")
