"""W3C trace context: parsing (malformed = a new trace, never an error), propagation through a hop and
the gateway's request span, trace ids on log lines, OpenTelemetry spans (in memory), and no SDK import
while export is off."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from actormesh_runtime.bus.spans import hop_attributes
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import Envelope, Intent, IntentResult
from actormesh_runtime.gateway.metrics import ObservabilityMiddleware
from actormesh_runtime.llm.client import LLMClient, LLMReply
from actormesh_runtime.llm.errors import LLMTimeout
from actormesh_runtime.observability import otel, tracing
from actormesh_runtime.observability.logging import JsonFormatter, TextFormatter
from actormesh_runtime.observability.tracing import TraceContext, parse_traceparent
from actormesh_runtime.pii import redact
from actormesh_runtime.settings import RuntimeSettings
from tests.support.envelopes import make_envelope

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01"


@pytest.fixture(autouse=True)
def fresh_log_context() -> Iterator[None]:
    """A hop's context outlives its span in its task (by design); these sync tests share one context."""
    token = tracing._CURRENT.set(None)
    yield
    tracing._CURRENT.reset(token)


# ---------------------------------------------------------------- parsing


def test_a_valid_traceparent_is_read() -> None:
    assert parse_traceparent(VALID, "vendor=abc") == TraceContext(TRACE, SPAN, True, "vendor=abc")
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-00") == TraceContext(TRACE, SPAN, False)
    assert parse_traceparent(f"  {VALID} ") == TraceContext(TRACE, SPAN, True)


def test_a_later_version_may_carry_more_fields() -> None:
    assert parse_traceparent(f"01-{TRACE}-{SPAN}-01-extra") == TraceContext(TRACE, SPAN, True)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(None, id="absent"),
        pytest.param("", id="empty"),
        pytest.param("garbage", id="garbage"),
        pytest.param(f"ff-{TRACE}-{SPAN}-01", id="version-ff"),
        pytest.param(f"00-{TRACE}-{SPAN}-01-extra", id="version-00-with-extra-field"),
        pytest.param(f"00-{'0' * 32}-{SPAN}-01", id="zero-trace-id"),
        pytest.param(f"00-{TRACE}-{'0' * 16}-01", id="zero-span-id"),
        pytest.param(f"00-{TRACE.upper()}-{SPAN}-01", id="uppercase-hex"),
        pytest.param(f"00-{TRACE[:-1]}-{SPAN}-01", id="short-trace-id"),
        pytest.param(f"00-{TRACE}-{SPAN}0-01", id="long-span-id"),
        pytest.param(f"00-{TRACE}-{SPAN}-1", id="short-flags"),
        pytest.param(f"00_{TRACE}_{SPAN}_01", id="wrong-separator"),
    ],
)
def test_a_malformed_traceparent_is_none_and_starts_a_new_trace(header: str | None) -> None:
    assert parse_traceparent(header, "vendor=abc") is None
    with tracing.span("request", parse_traceparent(header, "vendor=abc")) as fresh:
        assert parse_traceparent(fresh.context.traceparent) == TraceContext(
            fresh.context.trace_id, fresh.context.span_id, True
        )
        assert fresh.context.tracestate is None, "a tracestate never outlives its traceparent"


@pytest.mark.parametrize(
    "state", ["x" * 513, "vendor=a\nb", "vendor=\u00e9"], ids=["too-long", "control-char", "non-ascii"]
)
def test_a_bad_tracestate_is_dropped_and_the_traceparent_kept(state: str) -> None:
    assert parse_traceparent(VALID, state) == TraceContext(TRACE, SPAN, True, None)


def test_new_traces_and_children_have_valid_distinct_ids() -> None:
    roots = {tracing.new_trace().trace_id for _ in range(100)}
    assert len(roots) == 100
    parent = TraceContext(TRACE, SPAN, False, "vendor=abc")
    child = tracing.child_of(parent)
    assert (child.trace_id, child.sampled, child.tracestate) == (TRACE, False, "vendor=abc")
    assert child.span_id != SPAN
    assert parse_traceparent(child.traceparent) is not None


# ---------------------------------------------------------------- a hop


def test_a_hop_continues_the_envelopes_trace_and_hands_its_span_on() -> None:
    envelope = make_envelope("Where is my order ORD-10002?")
    envelope.headers.traceparent = VALID
    with tracing.hop_span("intent_analyzer", envelope.headers) as hop:
        assert tracing.current() == hop.context
    assert hop.context.trace_id == TRACE
    assert hop.context.span_id != SPAN
    assert envelope.headers.traceparent == hop.context.traceparent, "the next hop is this span's child"
    assert tracing.current() == hop.context, "the hop stays the task's log context (retry lines)"


def test_a_hop_with_a_malformed_traceparent_starts_a_trace_and_still_runs() -> None:
    envelope = make_envelope("Where is my order ORD-10002?")
    envelope.headers.traceparent = "not-a-traceparent"
    with tracing.hop_span("intent_analyzer", envelope.headers):
        pass
    assert parse_traceparent(envelope.headers.traceparent) is not None


def test_a_failing_hop_still_hands_its_span_on_and_raises() -> None:
    envelope = make_envelope("Where is my order ORD-10002?")
    envelope.headers.traceparent = VALID
    with pytest.raises(RuntimeError), tracing.hop_span("intent_analyzer", envelope.headers):
        raise RuntimeError("upstream down")
    context = parse_traceparent(envelope.headers.traceparent)
    assert context is not None
    assert (context.trace_id == TRACE, context.span_id != SPAN) == (True, True)


def test_hop_attributes_name_the_actor_delivery_intent_and_method() -> None:
    envelope = make_envelope("Where is my order ORD-10002?")
    envelope.headers.attempt = 3
    envelope.intent = IntentResult(intent=Intent.ORDER_STATUS, confidence=0.9, method="llm")
    attributes = hop_attributes(ActorName.INTENT_ANALYZER, envelope)
    assert attributes["actormesh.actor"] == "intent_analyzer"
    assert (attributes["actormesh.delivery_count"], attributes["actormesh.retry_count"]) == (3, 2)
    assert (attributes["actormesh.intent"], attributes["actormesh.method"]) == ("order_status", "llm")
    assert "actormesh.method" not in hop_attributes(ActorName.CONTEXT_RETRIEVER, envelope)


# ---------------------------------------------------------------- the envelope


def test_the_envelope_carries_the_callers_context_and_omits_an_absent_tracestate() -> None:
    plain = make_envelope("Where is my order ORD-10002?")
    assert "tracestate" not in json.loads(plain.to_bytes())["headers"], "older replicas refuse new keys"
    assert parse_traceparent(plain.headers.traceparent) is not None, "a started envelope is a trace root"
    started = Envelope.start(
        session_id="s-1", customer_email="a@example.com", message="hi", screening=plain.screening,
        budget_s=10, traceparent=VALID, tracestate="vendor=abc",
    )  # fmt: skip
    again = Envelope.from_bytes(started.to_bytes())
    assert (again.headers.traceparent, again.headers.tracestate) == (VALID, "vendor=abc")


# ---------------------------------------------------------------- logs


@pytest.fixture
def record() -> logging.LogRecord:
    return logging.LogRecord("actormesh.test", logging.INFO, __file__, 1, "submitted", (), None)


def test_log_lines_inside_a_span_carry_its_ids(record: logging.LogRecord) -> None:
    with tracing.span("test", parse_traceparent(VALID)) as span:
        tracing.TraceLogFilter().filter(record)
    data = json.loads(JsonFormatter().format(record))
    assert (data["trace_id"], data["span_id"]) == (TRACE, span.context.span_id)
    assert f"trace_id={TRACE} span_id={span.context.span_id}" in TextFormatter().format(record)


def test_log_lines_outside_any_span_carry_no_ids(record: logging.LogRecord) -> None:
    tracing.TraceLogFilter().filter(record)
    assert "trace_id" not in json.loads(JsonFormatter().format(record))


# ---------------------------------------------------------------- the gateway's request span


@dataclass
class Seen:
    context: TraceContext | None = None


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def gateway_client(seen: Seen) -> httpx.AsyncClient:
    async def handler(request: Request) -> JSONResponse:
        seen.context = tracing.current()
        return JSONResponse({})

    app = Starlette(routes=[Route("/api/chat", handler, methods=["POST"]), Route("/api/health", handler)])
    transport = httpx.ASGITransport(app=ObservabilityMiddleware(app))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


async def test_the_request_span_continues_the_callers_trace(
    gateway_client: httpx.AsyncClient, seen: Seen
) -> None:
    response = await gateway_client.post("/api/chat", headers={"traceparent": VALID, "tracestate": "v=1"})
    assert response.status_code == 200
    assert seen.context is not None
    assert (seen.context.trace_id, seen.context.tracestate) == (TRACE, "v=1")
    assert seen.context.span_id != SPAN


async def test_a_malformed_traceparent_is_a_new_trace_not_an_error(
    gateway_client: httpx.AsyncClient, seen: Seen
) -> None:
    response = await gateway_client.post("/api/chat", headers={"traceparent": "00-zzz-01"})
    assert response.status_code == 200
    assert seen.context is not None
    assert seen.context.trace_id != TRACE


async def test_probes_are_not_traced(gateway_client: httpx.AsyncClient, seen: Seen) -> None:
    await gateway_client.get("/api/health", headers={"traceparent": VALID})
    assert seen.context is None


# ---------------------------------------------------------------- OpenTelemetry spans (in memory)


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = otel.new_provider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_start_span", otel.OtelSpanFactory(provider))
    return exporter


def test_recorded_spans_link_parent_and_child_and_keep_errors_redacted(
    exported: InMemorySpanExporter,
) -> None:
    envelope = make_envelope("Where is my order ORD-10002?")
    envelope.headers.traceparent = VALID
    with pytest.raises(ValueError), tracing.hop_span("intent_analyzer", envelope.headers):
        raise ValueError("card 4111 1111 1111 1111 refused")
    (span,) = exported.get_finished_spans()
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == SPAN
    assert f"{span.context.trace_id:032x}" == TRACE
    assert envelope.headers.traceparent == f"00-{TRACE}-{span.context.span_id:016x}-01"
    assert span.status.status_code == StatusCode.ERROR
    assert "4111" not in (span.status.description or "")
    assert span.events[0].attributes is not None
    assert "4111" not in str(span.events[0].attributes["exception.message"])


async def test_a_recorded_request_span_is_named_for_its_route_with_the_http_attributes(
    exported: InMemorySpanExporter, gateway_client: httpx.AsyncClient
) -> None:
    await gateway_client.post("/api/chat", headers={"traceparent": VALID})
    (span,) = exported.get_finished_spans()
    assert (span.name, span.kind) == ("POST /api/chat", SpanKind.SERVER)
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/api/chat"
    assert span.attributes["http.response.status_code"] == 200


def test_an_unsampled_trace_stays_unsampled_downstream(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = otel.new_provider(sampler=otel.build_sampler("parentbased_always_on", None))
    monkeypatch.setattr(tracing, "_start_span", otel.OtelSpanFactory(provider))
    with tracing.span("gateway", parse_traceparent(f"00-{TRACE}-{SPAN}-00")) as span:
        assert span.context.traceparent.endswith("-00")
    off = otel.OtelSpanFactory(otel.new_provider(sampler=ALWAYS_OFF))
    monkeypatch.setattr(tracing, "_start_span", off)
    with tracing.span("root", None) as root:
        assert root.context.span_id != "0" * 16, "a dropped span still has ids for the logs"


def test_recorded_spans_ids_are_never_rewritten_by_the_log_redaction() -> None:
    """The SDK's own generator gives a span id such as a239814378669516 (a Luhn-valid 15-digit run)
    about once in 500; the redaction then rewrote it in the log lines that should match the trace."""
    factory = otel.OtelSpanFactory(otel.new_provider(sampler=ALWAYS_OFF))  # unsampled spans have ids too
    ids: list[str] = []
    for _ in range(2000):
        span = factory("root", None, "internal", None)
        ids += [span.context.trace_id, span.context.span_id]
        span.end()
    assert [i for i in ids if redact(i) != i or not (i[0] in "abcdef" and i[-1] in "abcdef")] == []


def test_samplers_are_the_specifications() -> None:
    assert "TraceIdRatioBased{0.25}" in otel.build_sampler("parentbased_traceidratio", 0.25).get_description()
    assert otel.build_sampler("always_off", None).get_description() == "AlwaysOffSampler"


# ---------------------------------------------------------------- settings and cost


@pytest.mark.parametrize(
    ("env", "endpoint"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}, "http://c:4318/v1/traces"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x",
            },
            "http://t/x",
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, None),
    ],
    ids=["off", "base-endpoint", "traces-endpoint-wins", "sdk-disabled", "grpc-unsupported"],
)
def test_the_standard_variables_decide_export(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], endpoint: str | None
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = RuntimeSettings()
    assert settings.otlp_traces_endpoint() == endpoint
    if env.get("OTEL_EXPORTER_OTLP_PROTOCOL") == "grpc":
        assert any("OTEL_EXPORTER_OTLP_PROTOCOL=grpc" in line for line in settings.startup_warnings())


def test_a_bad_sampler_name_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "sometimes")
    with pytest.raises(ValueError, match="otel_traces_sampler"):
        RuntimeSettings()


def test_with_export_off_the_sdk_is_never_imported() -> None:
    script = """
import sys
from actormesh_runtime.bus import host
from actormesh_runtime.gateway import app
from actormesh_runtime.observability import tracing
from actormesh_runtime.settings import RuntimeSettings
from tests.support.envelopes import make_envelope
assert not tracing.configure_tracing(RuntimeSettings(), service="test")
envelope = make_envelope("Where is my order ORD-10002?")
with tracing.hop_span("intent_analyzer", envelope.headers):
    pass
loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk", "opentelemetry.exporter")))
assert not loaded, loaded
"""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": "."}
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr


async def test_an_llm_call_is_a_client_span_inside_the_hop(
    exported: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = LLMClient(RuntimeSettings(litellm_model="openai/test-model"))
    replies: list[LLMReply | Exception] = [LLMReply("hello", 12, 3), LLMTimeout("no reply within 10s")]

    async def call(messages: object, max_tokens: int, timeout_s: float) -> LLMReply:
        reply = replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    monkeypatch.setattr(client, "_call", call)
    envelope = make_envelope("Where is my order ORD-10002?")
    envelope.headers.traceparent = VALID
    with tracing.hop_span("response_generator", envelope.headers):
        await client.complete_text([{"role": "user", "content": "hi"}], actor="response_generator")
        with pytest.raises(LLMTimeout):
            await client.complete_text([{"role": "user", "content": "hi"}], actor="response_generator")
    ok, failed, hop = exported.get_finished_spans()
    assert (ok.name, ok.kind) == ("chat openai/test-model", SpanKind.CLIENT)
    assert ok.parent is not None
    assert ok.parent.span_id == hop.context.span_id
    assert ok.attributes is not None
    assert (ok.attributes["gen_ai.usage.input_tokens"], ok.attributes["gen_ai.usage.output_tokens"]) == (
        12,
        3,
    )
    assert failed.status.status_code == StatusCode.ERROR
    assert hop.status.status_code == StatusCode.UNSET, "the actor fell back: its hop did not fail"


def test_a_message_sent_inside_a_span_carries_its_context() -> None:
    assert tracing.inject() == {}
    with tracing.span("aggregator", parse_traceparent(VALID, "vendor=abc")) as span:
        assert tracing.inject() == {"traceparent": span.context.traceparent, "tracestate": "vendor=abc"}


def test_a_batch_gets_one_span_per_message_and_none_when_nothing_records() -> None:
    with tracing.batch_spans("history store", [({"traceparent": VALID}, {})]) as spans:
        assert spans == [], "export off: a batch writer pays nothing"


def test_batch_spans_continue_each_messages_trace_and_share_the_failure(
    exported: InMemorySpanExporter,
) -> None:
    batch = [
        ({"traceparent": VALID}, {"actormesh.message_id": "m-1"}),
        (None, {"actormesh.message_id": "m-2"}),
    ]
    with pytest.raises(OSError), tracing.batch_spans("history store", batch):
        raise OSError("disk full")
    first, second = exported.get_finished_spans()
    assert first.parent is not None
    assert (f"{first.parent.span_id:016x}", f"{first.context.trace_id:032x}") == (SPAN, TRACE)
    assert second.parent is None, "a message without a context is a trace of its own"
    assert {first.status.status_code, second.status.status_code} == {StatusCode.ERROR}
