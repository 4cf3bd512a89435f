"""The LLM layer: the only package that imports litellm, and only lazily (see `client.py`).

Importing this package is cheap; litellm (~5 s, ~200 MB) is imported on the first call or on
`LLMClient.warm_up()`, so an actor that never uses an LLM never pays for it.
"""
