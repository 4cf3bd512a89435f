"""The one LLM client: litellm behind two async calls, `complete_text` and `complete_json`.

Used by intent_analyzer and response_generator (via `shared_client`). litellm is imported lazily,
in a worker thread (the import takes seconds and must not stall the event loop), with
`LITELLM_LOCAL_MODEL_COST_MAP=True` set first so the import never downloads a price list.

Every failure comes out as an `LLMError` subclass with a reason code; callers fall back to rules
or templates. Token usage and outcomes are recorded per actor in `llm.metrics`. A provider's error
text is kept (it says what went wrong) with the API key and anything shaped like a credential cut out
(`without_secrets`: providers and proxies quote the Authorization header or a keyed URL back) and card
numbers redacted. An endpoint that rejects the configuration itself (`LLMConfigurationError`: bad key,
unknown model) is logged as an error, once per episode, since no message will get an LLM answer. After
a 429 the process asks nobody until the provider's `Retry-After` has passed (`LLMRateLimited` at once);
after a 503 that carries one, the same (`LLMUnavailable` at once: an overloaded provider, not our rate).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from actormesh_runtime.llm import metrics
from actormesh_runtime.llm.errors import (
    LLMConfigurationError,
    LLMError,
    LLMInvalidResponse,
    LLMNotConfigured,
    LLMRateLimited,
    LLMTimeout,
    LLMUnavailable,
)
from actormesh_runtime.net import retry_after_seconds
from actormesh_runtime.observability import tracing
from actormesh_runtime.pii import redact
from actormesh_runtime.settings import RuntimeSettings

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)
Messages = list[dict[str, str]]

_EXTRAS_KEY = "llm_client"
_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$", re.IGNORECASE)

_litellm: ModuleType | None = None

MAX_CHARS_PER_TOKEN = 16
"""No tokenizer's tokens average this long: a reply longer than `max_tokens` times this came from an
endpoint that ignored `max_tokens`. Taken as it was, a megabyte-long draft outgrew what the bus
carries and the customer's request hung until the gateway's timeout."""

CONFIGURATION_LOG_EVERY_S = 300.0
"""While the endpoint keeps rejecting the configuration, the error is logged again this often (the
first rejection after a success is always logged)."""
RATE_LIMIT_PAUSE_S = 1.0
"""After a 429 without `Retry-After`: no call for this long (a 503 without one pauses nothing)."""
MAX_RATE_LIMIT_PAUSE_S = 60.0
"""The longest `Retry-After` honoured, a 429's or a 503's: a longer one (or a far date) is cut to this."""
_OVERLOADED = 503
_CONFIGURATION_STATUSES = frozenset({401, 403, 404})
_CONFIGURATION_TEXTS = (
    "LLM Provider NOT provided",  # litellm: a model name it cannot route (no HTTP call made)
    "Missing credentials",  # the OpenAI SDK: no key anywhere (no HTTP call made)
    "api_key client option must be set",
    "insufficient_quota",  # OpenAI's 429 for an account out of credit: waiting does not help
    "exceeded your current quota",
)
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)
MIN_SECRET_CHARS = 8
"""Shorter values of secret-named variables are not searched for (they would match ordinary words)."""
SECRET_PLACEHOLDER = "[REDACTED-SECRET]"
_SECRET_SHAPES = re.compile(
    # An Authorization header's value: "Bearer sk-...", "Basic dXNl..."
    r"(?P<scheme>\b(?:bearer|basic|token)\s+)[^\s\"',;]{8,}"
    # A credential given as name and value: `api_key=...` in a URL, `"x-api-key": "..."`, `key: ...`
    r"|(?P<name>\b(?:api[-_]?key|x-api-key|access[-_]?token|token|key|secret|password|authorization|sig)"
    r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&}]{8,}"
    # Provider keys by their prefix: sk-..., sk-proj-..., sk-ant-...
    r"|\b(?:sk|pk|rk)-[A-Za-z0-9_-]{12,}",
    re.IGNORECASE,
)


def _import_litellm() -> ModuleType:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    module = importlib.import_module("litellm")
    module.suppress_debug_info = True  # type: ignore[attr-defined]  # no "Give Feedback" banners in logs
    module.telemetry = False  # type: ignore[attr-defined]
    return module


async def _litellm_module() -> ModuleType:
    global _litellm
    if _litellm is None:
        # Concurrent first calls are serialised by Python's own import lock; no asyncio lock
        # (it would bind to one event loop).
        _litellm = await asyncio.to_thread(_import_litellm)
    return _litellm


@dataclass(frozen=True)
class LLMReply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cut_off: bool = False
    """The model stopped at `max_tokens` (finish_reason "length"): the text ends mid-sentence."""
    filtered: bool = False
    """The provider's content filter stopped the text (finish_reason "content_filter"): what is there
    is the part written before the filter tripped, or nothing."""


def without_secrets(text: str, known: tuple[str, ...] = ()) -> str:
    """`text` with every `known` secret, every secret-named environment variable's value (the provider's
    own key variable: `OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, ...) and anything shaped like a credential
    (`Bearer ...`, `api_key=...`, `sk-...`) replaced by `SECRET_PLACEHOLDER`."""
    secrets = {value for value in known if len(value) >= MIN_SECRET_CHARS}
    secrets.update(
        value
        for name, value in os.environ.items()
        if _SECRET_NAME.search(name) and len(value) >= MIN_SECRET_CHARS
    )
    for secret in sorted(secrets, key=len, reverse=True):  # longest first: one may contain another
        text = text.replace(secret, SECRET_PLACEHOLDER)

    def _keep_label(match: re.Match[str]) -> str:
        return (match.group("scheme") or match.group("name") or "") + SECRET_PLACEHOLDER

    return _SECRET_SHAPES.sub(_keep_label, text)


def extract_json(text: str) -> Any:
    """The JSON value in a model's answer, tolerating code fences and chatter around one object."""
    stripped = _FENCE.sub("", text).strip()
    # Not only JSONDecodeError: a number past the int-digit limit raises a plain ValueError and deep
    # nesting a RecursionError; both are garbage from the model, not a fault of the actor.
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        pass
    start, end = stripped.find("{"), stripped.rfind("}")
    if start != -1 and end > start:
        try:
            return json.loads(stripped[start : end + 1])
        except (ValueError, RecursionError):
            pass
    raise LLMInvalidResponse(f"no JSON object in reply: {redact(text)[:80]!r}")


class LLMClient:
    """Settings-bound litellm caller. One per process (see `shared_client`)."""

    def __init__(self, settings: RuntimeSettings) -> None:
        self.model = settings.litellm_model
        self.api_base = settings.llm_api_base
        self.api_key = settings.llm_api_key  # None: litellm reads the provider's own variable
        self.temperature = settings.llm_temperature
        self.timeout_s = settings.llm_timeout_s
        self._rejected_logged_at: float | None = None
        """When the last configuration rejection was logged; None after a call that worked."""
        self._paused_until = 0.0
        """`time.monotonic()` before which no call is made: the provider's `Retry-After` after a 429, or
        after a 503 that carries one."""
        self._paused_by: type[LLMUnavailable] = LLMRateLimited
        """What a call not made during the pause raises: the pause's cause (a 429 or a 503)."""

    @property
    def enabled(self) -> bool:
        return bool(self.model)

    async def warm_up(self) -> None:
        """Import litellm now (off the event loop) so the first real call is not slowed by it."""
        if self.enabled:
            await _litellm_module()

    async def complete_text(
        self, messages: Messages, *, actor: str, max_tokens: int = 400, timeout_s: float | None = None
    ) -> LLMReply:
        """One chat completion; raises an `LLMError` subclass on timeout (`timeout_s`, else
        LLM_TIMEOUT_S), HTTP error, empty text, a reply cut off at `max_tokens` or one far longer than
        `max_tokens` allows."""
        if not self.enabled:
            raise LLMNotConfigured("LITELLM_MODEL is not set")
        wait_s = self._paused_until - time.monotonic()
        if wait_s > 0:
            # The provider said to wait: a call now would be rejected too, and count against the rate.
            metrics.REQUESTS.labels(actor=actor, outcome=self._paused_by.reason).inc()
            raise self._paused_by(f"not asked: the provider asked to wait {wait_s:.3g}s more")
        started = time.perf_counter()
        failure: LLMError | None = None
        try:
            # A client span inside the hop's: the LLM call is most of an LLM hop's time.
            with tracing.span(f"chat {self.model}", tracing.current(), kind="client") as span:
                span.set_attributes(
                    {"gen_ai.operation.name": "chat", "gen_ai.request.model": self.model or "",
                     "gen_ai.request.max_tokens": max_tokens, "actormesh.actor": actor}
                )  # fmt: skip
                try:
                    reply = await self._call(messages, max_tokens, timeout_s or self.timeout_s)
                except LLMError as exc:  # recorded here, raised after the span: see _without_provider_text
                    span.record_error(_without_provider_text(exc))
                    failure = exc
                else:
                    span.set_attributes(
                        {"gen_ai.usage.input_tokens": reply.prompt_tokens,
                         "gen_ai.usage.output_tokens": reply.completion_tokens}
                    )  # fmt: skip
        finally:
            metrics.LATENCY.labels(actor=actor).observe(time.perf_counter() - started)
        if failure is not None:
            metrics.REQUESTS.labels(actor=actor, outcome=failure.reason).inc()
            if isinstance(failure, LLMConfigurationError):
                self._log_rejected(failure, actor)
            raise failure
        self._rejected_logged_at = None
        metrics.record_usage(actor, reply.prompt_tokens, reply.completion_tokens)
        if reply.filtered:
            # Azure OpenAI and others stop mid-text when their filter trips: a fragment, or nothing.
            metrics.REQUESTS.labels(actor=actor, outcome=LLMInvalidResponse.reason).inc()
            raise LLMInvalidResponse("reply stopped by the provider's content filter")
        if not reply.text.strip():
            metrics.REQUESTS.labels(actor=actor, outcome=LLMInvalidResponse.reason).inc()
            raise LLMInvalidResponse("empty reply")
        if len(reply.text) > max_tokens * MAX_CHARS_PER_TOKEN:
            metrics.REQUESTS.labels(actor=actor, outcome=LLMInvalidResponse.reason).inc()
            raise LLMInvalidResponse(f"reply of {len(reply.text)} characters for at most {max_tokens} tokens")
        if reply.cut_off:
            # Half a sentence is no reply to send, and half a JSON object none to read.
            metrics.REQUESTS.labels(actor=actor, outcome=LLMInvalidResponse.reason).inc()
            raise LLMInvalidResponse(f"reply cut off at max_tokens ({max_tokens})")
        metrics.REQUESTS.labels(actor=actor, outcome="ok").inc()
        return reply

    async def complete_json(
        self,
        messages: Messages,
        schema: type[T],
        *,
        actor: str,
        max_tokens: int = 300,
        timeout_s: float | None = None,
    ) -> T:
        """A completion parsed as JSON and validated against `schema`; `LLMInvalidResponse` if not."""
        reply = await self.complete_text(messages, actor=actor, max_tokens=max_tokens, timeout_s=timeout_s)
        try:
            return schema.model_validate(extract_json(reply.text))
        except ValidationError as exc:
            raise LLMInvalidResponse(
                f"reply does not match {schema.__name__}: {exc.error_count()} errors"
            ) from exc

    async def _call(self, messages: Messages, max_tokens: int, timeout_s: float) -> LLMReply:
        litellm = await _litellm_module()
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": max_tokens,
            "timeout": timeout_s,
            "num_retries": 0,  # the bus retries whole messages; a retry here would blow the budget
            "max_retries": 0,
        }
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.api_key:
            kwargs["api_key"] = self.api_key
        try:
            async with asyncio.timeout(timeout_s):
                response = await litellm.acompletion(**kwargs)
        except TimeoutError as exc:
            raise LLMTimeout(f"no reply within {timeout_s:.3g}s") from exc
        except Exception as exc:  # litellm raises many types; all mean "no usable answer"
            if isinstance(exc, getattr(litellm, "Timeout", ())):
                raise LLMTimeout(f"no reply within {timeout_s:.3g}s") from None
            # Provider errors may quote the request, its headers or their own data: secrets out, then
            # redact, then shorten (the other way round could cut a key or a number below the length
            # that is recognised as one). `from None`: the original, unscrubbed, is not kept as the cause
            # (a logged traceback would print it).
            text = f"{type(exc).__name__}: {redact(without_secrets(str(exc), self._secrets()))[:200]}"
            if _rejects_configuration(exc, litellm):
                raise LLMConfigurationError(text) from None
            status = getattr(exc, "status_code", None)
            if status == 429:
                pause_s = self._pause(_retry_after_s(exc), LLMRateLimited)
                raise LLMRateLimited(f"{text} (no call for {pause_s:.3g}s)") from None
            if status == _OVERLOADED and (hint_s := _retry_after_hint_s(exc)) is not None:
                # An overloaded provider that says when to come back: asking sooner only adds to its load.
                pause_s = self._pause(hint_s, LLMUnavailable)
                raise LLMUnavailable(f"{text} (no call for {pause_s:.3g}s)") from None
            raise LLMUnavailable(text) from None
        return _parse_response(response)

    def _pause(self, pause_s: float, cause: type[LLMUnavailable]) -> float:
        """No call for `pause_s` seconds from now (a longer pause already running is kept)."""
        until = time.monotonic() + pause_s
        if until > self._paused_until:
            self._paused_until, self._paused_by = until, cause
        return pause_s

    def _secrets(self) -> tuple[str, ...]:
        return (self.api_key,) if self.api_key else ()

    def _log_rejected(self, failure: LLMConfigurationError, actor: str) -> None:
        now, last = time.monotonic(), self._rejected_logged_at
        if last is not None and now - last < CONFIGURATION_LOG_EVERY_S:
            return
        self._rejected_logged_at = now
        log.error(
            "the LLM endpoint rejects the configuration: check LITELLM_MODEL, LLM_API_BASE and LLM_API_KEY"
            " (or the provider's key variable); until then every message is answered by rules and templates",
            extra={"model": self.model, "actor": actor, "error": str(failure)},
        )


def _retry_after_s(exc: Exception) -> float:
    """How long a 429 asks the caller to wait: its hint (`_retry_after_hint_s`), else
    `RATE_LIMIT_PAUSE_S`."""
    hint_s = _retry_after_hint_s(exc)
    return RATE_LIMIT_PAUSE_S if hint_s is None else hint_s


def _retry_after_hint_s(exc: Exception) -> float | None:
    """The wait an error response asks for: `retry-after-ms` (OpenAI), else `Retry-After` as seconds or
    an HTTP date (`net.retry_after_seconds`); at most `MAX_RATE_LIMIT_PAUSE_S`; None without a readable
    one."""
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    seconds: float | None = None
    with contextlib.suppress(TypeError, ValueError):
        if milliseconds := headers.get("retry-after-ms"):
            seconds = float(milliseconds) / 1000
    if seconds is None:
        retry_after = headers.get("retry-after")
        seconds = retry_after_seconds(str(retry_after) if retry_after is not None else None)
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RATE_LIMIT_PAUSE_S)


def _rejects_configuration(exc: Exception, litellm: ModuleType) -> bool:
    """The failure is the deployment's settings, not this request: every call would fail the same way."""
    if getattr(exc, "status_code", None) in _CONFIGURATION_STATUSES:
        return True
    if isinstance(exc, getattr(litellm, "UnsupportedParamsError", ())):
        return True
    text = str(exc)
    return any(marker in text for marker in _CONFIGURATION_TEXTS)


def _without_provider_text(exc: LLMError) -> LLMError:
    """What the LLM call's span records of a failure: its class and the provider's error class
    ("LLMUnavailable: InternalServerError"). A provider's error text may quote the prompt — the
    customer's name, orders and message — and spans leave for a trace backend; the full text, redacted,
    stays in the actor's `llm_fallback_reason`."""
    return type(exc)(str(exc).split(":", 1)[0])


def _parse_response(response: Any) -> LLMReply:
    try:
        choice = response.choices[0]
        text = choice.message.content or ""
    except (AttributeError, IndexError, TypeError) as exc:
        raise LLMInvalidResponse("reply has no choices") from exc
    usage = getattr(response, "usage", None)
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    finish_reason = getattr(choice, "finish_reason", None)
    return LLMReply(
        text=str(text),
        prompt_tokens=prompt,
        completion_tokens=completion,
        cut_off=finish_reason == "length",
        filtered=finish_reason == "content_filter",
    )


def shared_client(settings: RuntimeSettings, extras: dict[str, Any]) -> LLMClient | None:
    """The process's LLM client (kept in `ActorDeps.extras`), or None when no model is configured."""
    if not settings.litellm_model:
        return None
    client = extras.get(_EXTRAS_KEY)
    if not isinstance(client, LLMClient):
        client = LLMClient(settings)
        extras[_EXTRAS_KEY] = client
    return client
