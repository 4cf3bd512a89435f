"""LLM errors: one small tree the LLM-using actors catch to fall back to rules or templates.

Each class carries a short `reason` code that actors record (`llm_fallback_reason`) and that
labels the `actormesh_llm_requests_total` metric.
"""

from __future__ import annotations

from actormesh_runtime.errors import UpstreamUnavailable


class LLMError(UpstreamUnavailable):
    """The LLM gave no usable answer. Actors never let this escape: they fall back."""

    reason = "error"


class LLMNotConfigured(LLMError):
    """LITELLM_MODEL is unset: rules and templates only."""

    reason = "not_configured"


class LLMTimeout(LLMError):
    """No complete answer within LLM_TIMEOUT_S."""

    reason = "timeout"


class LLMUnavailable(LLMError):
    """The endpoint refused, failed or could not be reached (HTTP error, connection error)."""

    reason = "unavailable"


class LLMInvalidResponse(LLMError):
    """The endpoint answered, but not with what was asked (no JSON, wrong fields, empty text)."""

    reason = "invalid_response"
