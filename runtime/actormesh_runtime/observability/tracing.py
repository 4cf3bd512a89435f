"""W3C trace context, one span per hop, and trace ids on log lines.

Who calls what:
- every command that carries conversations (`gateway`, `actor`, `history`, `dev`, `ask`) calls
  `configure_tracing(settings, service=...)` once, next to `configure_logging`;
- the gateway parses the caller's `traceparent`/`tracestate` (`parse_traceparent`; malformed means a
  new trace, never an error) and opens a server span around the request (`span`);
- the actor host wraps each actor's handling of an envelope in `hop_span`, which continues the
  context the envelope carries and writes its own span's context back, so the next hop (or the error
  path) is its child.

Off by default, and then nearly free: without `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` a span is a
small object holding ids (one random 64-bit span id per hop). The context still travels and log lines
still carry `trace_id`/`span_id`, but the OpenTelemetry SDK is never imported: `observability.otel`,
which imports it, is loaded only by `configure_tracing` when export is on.
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from actormesh_runtime.ids import random_hex
from actormesh_runtime.net import without_credentials

if TYPE_CHECKING:
    from actormesh_runtime.settings import RuntimeSettings

log = logging.getLogger(__name__)

SpanKind = Literal["internal", "server", "client", "producer", "consumer"]
AttributeValue = str | bool | int | float
Attributes = Mapping[str, AttributeValue]

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
MAX_TRACESTATE_CHARS = 512
"""W3C: a tracestate may be cut at 512 characters; longer ones are dropped rather than cut mid-entry."""
_TRACESTATE = re.compile(r"^[\x20-\x7e]*$")
_ODD = frozenset("13579bdf")
"""Last hex digit of the flags with the `sampled` bit (0x01) set."""


@dataclass(slots=True)
class TraceContext:
    """One span's place in a trace, as W3C `traceparent` (+ `tracestate`) carries it. Treated as
    immutable; not frozen only because a frozen dataclass costs a microsecond per instance, per hop."""

    trace_id: str
    span_id: str
    sampled: bool = True
    tracestate: str | None = None

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"


# `ids.random_hex`: never all zero (an invalid id), never rewritten by the log redaction.
def _new_span_id() -> str:
    return random_hex(16)


def _new_trace_id() -> str:
    return random_hex(32)


def new_trace(*, sampled: bool = True) -> TraceContext:
    """The root of a new trace."""
    return TraceContext(_new_trace_id(), _new_span_id(), sampled)


def child_of(parent: TraceContext | None) -> TraceContext:
    """A new span id in `parent`'s trace (same sampling decision and tracestate), or a new trace."""
    if parent is None:
        return new_trace()
    return TraceContext(parent.trace_id, _new_span_id(), parent.sampled, parent.tracestate)


def parse_traceparent(traceparent: str | None, tracestate: str | None = None) -> TraceContext | None:
    """The context in a `traceparent` header, or None when it is absent or malformed.

    Follows W3C Trace Context level 1: version `ff` and all-zero ids are invalid; version `00` has
    exactly four fields; a later version may append fields, which are ignored. A `tracestate` is kept
    only with a valid `traceparent`, and only when it is printable and at most 512 characters.
    """
    if not traceparent:
        return None
    match = _TRACEPARENT.fullmatch(traceparent.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    state = tracestate.strip() if tracestate else None
    if state and (len(state) > MAX_TRACESTATE_CHARS or not _TRACESTATE.match(state)):
        state = None
    return TraceContext(trace_id, span_id, flags[1] in _ODD, state or None)


# ---------------------------------------------------------------- spans


class Span:
    """A span that records nothing: it holds its context so logs and the envelope can carry it.

    With export on, `observability.otel` hands out a subclass that records into OpenTelemetry.
    """

    __slots__ = ("context",)

    def __init__(self, context: TraceContext) -> None:
        self.context = context

    def set_attributes(self, attributes: Attributes) -> None:
        """Add attributes (a no-op when nothing records)."""

    def set_name(self, name: str) -> None:
        """Rename the span (e.g. once the route template is known)."""

    def record_error(self, error: BaseException | str) -> None:
        """Mark the span failed, with the exception as an event when there is one."""

    def end(self) -> None:
        """Finish the span."""


class SpanFactory(Protocol):
    """What starts a span: the no-op default here, or the OpenTelemetry one in `observability.otel`."""

    def __call__(
        self, name: str, parent: TraceContext | None, kind: SpanKind, attributes: Attributes | None
    ) -> Span: ...


def _plain_span(
    name: str, parent: TraceContext | None, kind: SpanKind, attributes: Attributes | None
) -> Span:
    return Span(child_of(parent))


_start_span: SpanFactory = _plain_span
_CURRENT: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar("trace_context", default=None)
"""The context log lines carry (may outlive its span: see `hop_span`)."""
_ACTIVE: contextvars.ContextVar[Span | None] = contextvars.ContextVar("active_span", default=None)
"""The span being run, for `annotate`."""


def current() -> TraceContext | None:
    """The context of the span being run in this task (None outside any span)."""
    return _CURRENT.get()


def exporting() -> bool:
    """True when spans are recorded and exported (OTLP configured)."""
    return _start_span is not _plain_span


def span(
    name: str,
    parent: TraceContext | None,
    *,
    kind: SpanKind = "internal",
    attributes: Attributes | None = None,
) -> AbstractContextManager[Span]:
    """A span, child of `parent` (None: a new trace), current for logs while the block runs.

    An exception leaving the block is recorded on the span (a cancellation is not a failure) and
    re-raised.
    """
    return _SpanScope(name, parent, kind, attributes)


class _SpanScope:
    # A class, not @contextmanager: a generator costs microseconds per use, and this runs per request.
    __slots__ = ("_active_token", "_args", "_span", "_token")

    def __init__(
        self, name: str, parent: TraceContext | None, kind: SpanKind, attributes: Attributes | None
    ) -> None:
        self._args = (name, parent, kind, attributes)

    def __enter__(self) -> Span:
        started = self._span = _start_span(*self._args)
        self._token = _CURRENT.set(started.context)
        self._active_token = _activate(started)
        return started

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        if isinstance(error, Exception):
            self._span.record_error(error)
        self._span.end()
        if self._active_token is not None:
            _ACTIVE.reset(self._active_token)
        _CURRENT.reset(self._token)


def _activate(started: Span) -> contextvars.Token[Span | None] | None:
    """Make `started` the target of `annotate`; only when it records (a plain span ignores attributes)."""
    return _ACTIVE.set(started) if exporting() else None


class TraceHeaders(Protocol):
    """Where an envelope keeps its context (`envelope.Headers`): read, then overwritten by the hop."""

    traceparent: str
    tracestate: str | None


def hop_span(
    actor: str, headers: TraceHeaders, *, describe: Callable[[], Attributes] | None = None
) -> AbstractContextManager[Span]:
    """The span of one actor handling one envelope: a child of the context the envelope carries
    (a malformed one starts a new trace), whose own context is written back into `headers` so the
    next hop — or the error path — is its child.

    The hop's context stays the task's log context after the block: the host's retry and
    dead-letter lines that follow belong to this hop (each message runs in its own task, and the
    next hop in the same task replaces it). `describe` gives the span's attributes at the end, success
    or failure, and is called only when spans are recorded.
    """
    return _HopScope(actor, headers, describe)


class _HopScope:
    __slots__ = ("_active_token", "_actor", "_describe", "_headers", "_span")

    def __init__(self, actor: str, headers: TraceHeaders, describe: Callable[[], Attributes] | None) -> None:
        self._actor = actor
        self._headers = headers
        self._describe = describe

    def __enter__(self) -> Span:
        headers = self._headers
        parent = parse_traceparent(headers.traceparent, headers.tracestate)
        started = self._span = _start_span(self._actor, parent, "consumer", None)
        headers.traceparent = started.context.traceparent
        _CURRENT.set(started.context)  # never reset: see hop_span
        self._active_token = _activate(started)
        return started

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        started = self._span
        if self._active_token is not None:  # recording
            if self._describe is not None:
                started.set_attributes(self._describe())
            _ACTIVE.reset(self._active_token)
        if isinstance(error, Exception):
            started.record_error(error)
        started.end()


class _BatchScope:
    __slots__ = ("_batch", "_name", "_spans")

    def __init__(self, name: str, batch: Sequence[tuple[Mapping[str, str] | None, Attributes]]) -> None:
        self._name = name
        self._batch = batch
        self._spans: list[Span] = []

    def __enter__(self) -> list[Span]:
        if exporting():
            for carrier, attributes in self._batch:
                parent = parse_traceparent(*_carried(carrier)) if carrier else None
                self._spans.append(_start_span(self._name, parent, "consumer", attributes))
        return self._spans

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        for started in self._spans:
            if isinstance(error, Exception):
                started.record_error(error)
            started.end()


def _carried(carrier: Mapping[str, str]) -> tuple[str | None, str | None]:
    return carrier.get("traceparent"), carrier.get("tracestate")


def batch_spans(
    name: str, batch: Sequence[tuple[Mapping[str, str] | None, Attributes]]
) -> AbstractContextManager[list[Span]]:
    """One span per message of a batch handled as one unit of work (the history writer's transaction):
    each a child of the context its message's headers carried (`inject`), all lasting the block.
    Nothing at all when nothing records: a batch writer logs per batch, not per message."""
    return _BatchScope(name, batch)


def inject() -> dict[str, str]:
    """The current context as message headers (W3C names), for a message sent from inside a span."""
    context = _CURRENT.get()
    if context is None:
        return {}
    headers = {"traceparent": context.traceparent}
    if context.tracestate:
        headers["tracestate"] = context.tracestate
    return headers


def annotate(attributes: Attributes) -> None:
    """Add attributes to the span being run (ignored outside a span, or when nothing records)."""
    active = _ACTIVE.get()
    if active is not None:
        active.set_attributes(attributes)


# ---------------------------------------------------------------- logs


class TraceLogFilter(logging.Filter):
    """Adds `trace_id` and `span_id` to records logged inside a span (installed by configure_logging)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _CURRENT.get()
        if context is not None and not hasattr(record, "trace_id"):
            record.trace_id = context.trace_id
            record.span_id = context.span_id
        return True


# ---------------------------------------------------------------- configuration


def configure_tracing(settings: RuntimeSettings, *, service: str) -> bool:
    """Turn OTLP export on when the settings ask for it; returns whether it is on. Calling it again
    replaces (and flushes) the exporter a previous call started.

    `service` names this process (`gateway`, an actor, `history`, `dev`) when OTEL_SERVICE_NAME is
    unset. A failure to set up export (a bad endpoint URL) is logged and leaves tracing off: a
    process never refuses to serve because its telemetry is misconfigured.
    """
    global _start_span
    shutdown_tracing()
    endpoint = settings.otlp_traces_endpoint()
    if endpoint is None:
        return False
    service_name = settings.otel_service_name or f"actormesh-{service}"
    # The exporter sends a URL's `user:password@` as basic auth; the log line names only the place.
    shown = without_credentials(endpoint)
    try:
        from actormesh_runtime.observability.otel import otel_span_factory

        _start_span = otel_span_factory(settings, endpoint=endpoint, service_name=service_name)
    except Exception as exc:
        log.warning("tracing export not started", extra={"endpoint": shown, "error": repr(exc)})
        return False
    extra = {"endpoint": shown, "service": service_name, "sampler": settings.otel_traces_sampler}
    log.info("tracing export on", extra=extra)
    return True


def shutdown_tracing() -> None:
    """Flush and stop the exporter (at exit: the SDK also registers this with atexit)."""
    global _start_span
    factory = _start_span
    _start_span = _plain_span
    close = getattr(factory, "shutdown", None)
    if close is not None:
        close()
