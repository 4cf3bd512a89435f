"""Prometheus metrics of the bus, labelled by actor. Served on /metrics by `bus.health`.

Defined once per process on the default registry; the actor host (`bus.host`) updates them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PROCESSED = Counter(
    "actormesh_messages_processed",
    "Envelopes an actor handled successfully and passed on.",
    ["actor"],
)
FAILED = Counter(
    "actormesh_messages_failed",
    "Failed handling attempts (each one, whether retried or not).",
    ["actor"],
)
REDELIVERED = Counter(
    "actormesh_messages_redelivered",
    "Deliveries that were not the first for their message (retries and crash recovery).",
    ["actor"],
)
DEAD_LETTERED = Counter(
    "actormesh_messages_dead_lettered",
    "Envelopes stored in the dead-letter stream (permanent error or deliveries exhausted).",
    ["actor"],
)
PROCESSING_SECONDS = Histogram(
    "actormesh_processing_seconds",
    "Time one actor spent handling one envelope.",
    ["actor"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
IN_FLIGHT = Gauge(
    "actormesh_in_flight",
    "Envelopes being handled right now by this process.",
    ["actor"],
)
