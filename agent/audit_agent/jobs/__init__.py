"""Jobs that select rows, call a model through tasks/ and llm/, verify, and return a typed result."""
