"""LLM tasks (judge, guide rewrite, paraphrase): each names its prompt template and pydantic schema."""
