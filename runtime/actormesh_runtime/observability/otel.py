"""OpenTelemetry export: the span factory `observability.tracing` uses when OTLP is configured.

Imported only by `tracing.configure_tracing`, and only when an endpoint is set, so a process with
tracing off never loads the SDK. Spans go to a batch processor (a background thread) and out over
OTLP/HTTP protobuf. The provider is private to this module — no global OpenTelemetry state is set, so
libraries that would trace themselves through the global provider (FastAPI's native telemetry, which
the gateway also turns off) add no spans of their own.

The exporter's other standard variables (OTEL_EXPORTER_OTLP_TIMEOUT, _CERTIFICATE, _COMPRESSION), the
batch processor's (OTEL_BSP_*) and OTEL_RESOURCE_ATTRIBUTES are read by the SDK itself; the ones
that decide whether, where and with which credentials to export are `RuntimeSettings` fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)
from opentelemetry.trace import SpanKind as OtelKind
from opentelemetry.util.re import parse_env_headers

from actormesh_runtime.ids import random_hex
from actormesh_runtime.observability.emails import scrubbed
from actormesh_runtime.observability.tracing import Attributes, Span, SpanKind, TraceContext

if TYPE_CHECKING:
    from actormesh_runtime.settings import RuntimeSettings

_KINDS = {
    "internal": OtelKind.INTERNAL,
    "server": OtelKind.SERVER,
    "client": OtelKind.CLIENT,
    "producer": OtelKind.PRODUCER,
    "consumer": OtelKind.CONSUMER,
}


class RedactionSafeIds(IdGenerator):
    """Span and trace ids drawn as `ids.random_hex` draws them, for the same reason: the SDK's own
    generator makes an id with a Luhn-valid run of 13+ digits about once in 500 spans, and the log
    redaction then rewrites that id in every line that carries it."""

    def generate_span_id(self) -> int:
        return int(random_hex(16), 16)

    def generate_trace_id(self) -> int:
        return int(random_hex(32), 16)

    def is_trace_id_random(self) -> bool:
        # Its last hex digit is a letter and ids with a card-length digit run are redrawn, so the
        # low 56 bits are not uniformly random, which is what the W3C random flag promises.
        return False


def new_provider(resource: Resource | None = None, sampler: Sampler | None = None) -> TracerProvider:
    """A private provider (no global state) whose ids survive the log redaction."""
    return TracerProvider(sampler=sampler, resource=resource, id_generator=RedactionSafeIds())


def build_sampler(name: str, ratio: float | None) -> Sampler:
    """The sampler OTEL_TRACES_SAMPLER names, as the OpenTelemetry specification defines them."""
    rate = 1.0 if ratio is None else ratio
    samplers: dict[str, Sampler] = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "traceidratio": TraceIdRatioBased(rate),
        "parentbased_always_on": ParentBased(ALWAYS_ON),
        "parentbased_always_off": ParentBased(ALWAYS_OFF),
        "parentbased_traceidratio": ParentBased(TraceIdRatioBased(rate)),
    }
    return samplers[name]


class _OtelSpan(Span):
    __slots__ = ("_span",)

    def __init__(self, span: Any, context: TraceContext) -> None:
        super().__init__(context)
        self._span = span

    def set_attributes(self, attributes: Attributes) -> None:
        self._span.set_attributes(dict(attributes))

    def set_name(self, name: str) -> None:
        self._span.update_name(name)

    def record_error(self, error: BaseException | str) -> None:
        # Our own event instead of record_exception: the message is redacted and its emails
        # pseudonymised like every log line (an exception may quote customer input), and no stack
        # trace leaves the process.
        if isinstance(error, BaseException):
            text = scrubbed(str(error))[:1000]
            event = {"exception.type": type(error).__name__, "exception.message": text}
            self._span.add_event("exception", event)
            description = f"{type(error).__name__}: {text}" if text else type(error).__name__
        else:
            description = scrubbed(error)[:1000]
        self._span.set_status(Status(StatusCode.ERROR, description))

    def end(self) -> None:
        self._span.end()


def _parent_context(parent: TraceContext | None) -> Context:
    if parent is None:
        return Context()  # a new root, whatever else this thread traced
    state = TraceState.from_header([parent.tracestate]) if parent.tracestate else None
    remote = SpanContext(
        trace_id=int(parent.trace_id, 16),
        span_id=int(parent.span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if parent.sampled else TraceFlags.DEFAULT),
        trace_state=state,
    )
    return set_span_in_context(NonRecordingSpan(remote), Context())


class OtelSpanFactory:
    """Starts recording spans (a `tracing.SpanFactory`); `shutdown` flushes what is queued."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("actormesh_runtime")

    def __call__(
        self, name: str, parent: TraceContext | None, kind: SpanKind, attributes: Attributes | None
    ) -> Span:
        started = self._tracer.start_span(
            name, context=_parent_context(parent), kind=_KINDS[kind], attributes=attributes
        )
        ids = started.get_span_context()
        context = TraceContext(
            f"{ids.trace_id:032x}",
            f"{ids.span_id:016x}",
            ids.trace_flags.sampled,
            parent.tracestate if parent is not None else None,
        )
        return _OtelSpan(started, context)

    def shutdown(self) -> None:
        self._provider.shutdown()


def otel_span_factory(settings: RuntimeSettings, *, endpoint: str, service_name: str) -> OtelSpanFactory:
    """A provider exporting to `endpoint` (OTLP/HTTP) as `service_name`, sampled as the settings say."""
    resource = Resource.create(
        {
            "service.name": service_name,
            "service.namespace": "actormesh",
            "actormesh.mesh": settings.mesh_name,
        }
    )
    sampler = build_sampler(settings.otel_traces_sampler, settings.otel_traces_sampler_arg)
    provider = new_provider(resource, sampler)
    headers = settings.otel_exporter_otlp_headers
    exporter = OTLPSpanExporter(
        endpoint=endpoint, headers=parse_env_headers(headers, liberal=True) if headers else None
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return OtelSpanFactory(provider)
