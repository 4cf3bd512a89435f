"""Prometheus metrics for LLM calls, per actor; served by the actor host's /metrics (default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PROMPT_TOKENS = Counter(
    "actormesh_llm_prompt_tokens",
    "Prompt tokens sent to the LLM, as reported by the endpoint.",
    ["actor"],
)
COMPLETION_TOKENS = Counter(
    "actormesh_llm_completion_tokens",
    "Completion tokens received from the LLM, as reported by the endpoint.",
    ["actor"],
)
REQUESTS = Counter(
    "actormesh_llm_requests",
    "LLM calls by outcome: ok, or the LLMError reason (timeout, unavailable, invalid_response).",
    ["actor", "outcome"],
)
LATENCY = Histogram(
    "actormesh_llm_request_seconds",
    "Wall time of one LLM call, including failed ones.",
    ["actor"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0),
)


def record_usage(actor: str, prompt_tokens: int, completion_tokens: int) -> None:
    PROMPT_TOKENS.labels(actor=actor).inc(prompt_tokens)
    COMPLETION_TOKENS.labels(actor=actor).inc(completion_tokens)
