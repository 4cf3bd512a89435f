"""What tracing costs per hop: `python -m bench.tracing_cost` (a measurement, not a test).

Times the host's one tracing call (`bus.spans.traced_hop`) around an empty block, with export off
(the default: a span is ids only, the SDK is not imported) and on (the OpenTelemetry SDK recording
into its batch processor; the exporter drops the batches, so the network is not measured). For
scale it also times what every hop already does to the same envelope: decode and encode it.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable
from contextlib import nullcontext

from actormesh_runtime.bus.spans import traced_hop
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import Envelope
from actormesh_runtime.observability import tracing
from actormesh_runtime.screening import screen

ACTOR = ActorName.INTENT_ANALYZER


def _envelope() -> Envelope:
    text, screening = screen("Where is my order ORD-10002?")
    return Envelope.start(
        session_id="sess-bench", customer_email="john.doe@example.com", message=text,
        screening=screening, budget_s=60,
    )  # fmt: skip


def _per_call_ns(body: Callable[[], object], number: int, repeat: int) -> float:
    return min(timeit.repeat(body, number=number, repeat=repeat)) / number * 1e9


def measure(number: int, repeat: int) -> dict[str, float]:
    envelope = _envelope()
    data = envelope.to_bytes()

    def bare() -> None:
        with nullcontext():
            pass

    def hop() -> None:
        with traced_hop(ACTOR, envelope):
            pass

    def codec() -> None:
        Envelope.from_bytes(data).to_bytes()

    results = {"bare block": _per_call_ns(bare, number, repeat)}
    results["traced_hop, export off"] = _per_call_ns(hop, number, repeat)
    assert "opentelemetry.sdk" not in sys.modules, "export off must not load the SDK"
    tracing._start_span = _recording_factory()
    try:
        results["traced_hop, export on (SDK, batch)"] = _per_call_ns(hop, number, repeat)
    finally:
        tracing._start_span = tracing._plain_span
    results["envelope decode + encode (every hop)"] = _per_call_ns(codec, max(1, number // 10), repeat)
    return results


def _recording_factory() -> tracing.SpanFactory:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Dropping(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    from actormesh_runtime.observability.otel import OtelSpanFactory

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropping()))
    return OtelSpanFactory(provider)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--number", type=int, default=50_000, help="calls per timing")
    parser.add_argument("--repeat", type=int, default=5, help="timings; the fastest is reported")
    args = parser.parse_args(argv)
    for name, ns in measure(args.number, args.repeat).items():
        print(f"{name:40s} {ns / 1000:8.2f} µs per hop")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
