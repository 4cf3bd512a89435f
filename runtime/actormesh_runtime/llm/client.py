"""The one LLM client: litellm behind two async calls, `complete_text` and `complete_json`.

Used by intent_analyzer and response_generator (via `shared_client`). litellm is imported lazily,
in a worker thread (the import takes seconds and must not stall the event loop), with
`LITELLM_LOCAL_MODEL_COST_MAP=True` set first so the import never downloads a price list.

Every failure comes out as an `LLMError` subclass with a reason code; callers fall back to rules
or templates. Token usage and outcomes are recorded per actor in `llm.metrics`.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import re
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from actormesh_runtime.llm import metrics
from actormesh_runtime.llm.errors import (
    LLMError,
    LLMInvalidResponse,
    LLMNotConfigured,
    LLMTimeout,
    LLMUnavailable,
)
from actormesh_runtime.observability import tracing
from actormesh_runtime.pii import redact
from actormesh_runtime.settings import RuntimeSettings

T = TypeVar("T", bound=BaseModel)
Messages = list[dict[str, str]]

_EXTRAS_KEY = "llm_client"
_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$", re.IGNORECASE)

_litellm: ModuleType | None = None

MAX_CHARS_PER_TOKEN = 16
"""No tokenizer's tokens average this long: a reply longer than `max_tokens` times this came from an
endpoint that ignored `max_tokens`. Taken as it was, a megabyte-long draft outgrew what the bus
carries and the customer's request hung until the gateway's timeout."""


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
            raise failure
        metrics.record_usage(actor, reply.prompt_tokens, reply.completion_tokens)
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
                raise LLMTimeout(f"no reply within {timeout_s:.3g}s") from exc
            # Provider errors may quote the request or their own data: redact, then shorten (the other
            # way round could cut a number below the length that is recognised as one).
            raise LLMUnavailable(f"{type(exc).__name__}: {redact(str(exc))[:200]}") from exc
        return _parse_response(response)


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
    cut_off = getattr(choice, "finish_reason", None) == "length"
    return LLMReply(text=str(text), prompt_tokens=prompt, completion_tokens=completion, cut_off=cut_off)


def shared_client(settings: RuntimeSettings, extras: dict[str, Any]) -> LLMClient | None:
    """The process's LLM client (kept in `ActorDeps.extras`), or None when no model is configured."""
    if not settings.litellm_model:
        return None
    client = extras.get(_EXTRAS_KEY)
    if not isinstance(client, LLMClient):
        client = LLMClient(settings)
        extras[_EXTRAS_KEY] = client
    return client
