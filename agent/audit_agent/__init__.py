"""audit-agent: catch the traps in (synthetic) training data before fine-tuning a small model."""

__version__ = "0.1.0"
