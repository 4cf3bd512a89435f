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


class LLMConfigurationError(LLMUnavailable):
    """The endpoint rejects the deployment's settings, not this one request: a bad or missing key (401),
    no access to the model (403), no such model or path (404), a model name litellm cannot route, a
    parameter the model does not take, an account out of credit (429 `insufficient_quota`). Every call
    fails the same way until an operator fixes LITELLM_MODEL, LLM_API_BASE or the key; the client logs
    it (once per episode) as an error."""

    reason = "configuration"


class LLMRateLimited(LLMUnavailable):
    """The endpoint answered 429, or said so before and its `Retry-After` has not run out yet (the call
    is then not made: calls rejected for the rate count against it too)."""

    reason = "rate_limited"


class LLMInvalidResponse(LLMError):
    """The endpoint answered, but not with what was asked (no JSON, wrong fields, empty text, a reply cut
    off at `max_tokens` or stopped by the provider's content filter)."""

    reason = "invalid_response"
