"""The only package that knows litellm, instructor, tenacity, the cache and the embedded server.

Everything else talks to a model through `base.LLMClient`.
"""
