"""Prometheus metrics of the bus, labelled by actor. Served on /metrics by `bus.health`.

Defined once per process on the default registry. The counters and histograms are updated by the
actor host (`bus.host`) for the work done in this process, so summing them over replicas is right.
The queue gauges (`actormesh_queue_*`, `actormesh_dead_letters`, `actormesh_stream_*`) describe
shared JetStream state; exactly one process per mesh sets them (`bus.queue_metrics`, run by the
history service), so they are never double counted. docs/metrics.md is the table of every metric.
"""

from __future__ import annotations

from collections.abc import Callable

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
    "Envelopes this process stored in the dead-letter stream, by actor and reason class.",
    ["actor", "reason"],
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
_handling: dict[str, list[int]] = {}


def handling_counter(actor: str) -> list[int]:
    """The count behind `IN_FLIGHT{actor}` in this process: a one-element list the actor host adds to
    and takes from around each step (every host of `actor` in the process shares it).

    The gauge reads it when scraped. A prometheus update takes a lock and costs a microsecond or so;
    this gauge changed twice per hop, while a scrape comes every few seconds.
    """
    counter = _handling.get(actor)
    if counter is None:
        counter = _handling[actor] = [0]
        IN_FLIGHT.labels(actor).set_function(lambda: counter[0])
    return counter


# --- Direct hops (`DIRECT_HOPS`, `bus.direct`): work done in this process, like the counters above ----------

DIRECT_HOPS_SENT = Counter(
    "actormesh_direct_hops_sent",
    "Hops this process sent over core NATS to a process of `actor` (direct hops).",
    ["actor"],
)
DIRECT_HOPS_DIVERTED = Counter(
    "actormesh_direct_hops_diverted",
    "Hops to `actor` that went through the stream instead: no process of it received the direct hop"
    " (`no_receiver`), or the server refused this process's direct hops (`refused`).",
    ["actor", "reason"],
)
DIRECT_HOPS_EXPIRED = Counter(
    "actormesh_direct_hops_expired",
    "Direct hops for `actor` dropped: they came past their origin's ack wait, so JetStream"
    " redelivers the origin and the chain runs again from its first step.",
    ["actor"],
)
DIRECT_SETTLES_REFUSED = Counter(
    "actormesh_direct_settles_refused",
    "Settles of `actor`'s deliveries that another process sent and this one did not carry out: not"
    " sealed with `actor`'s credential, not its consumer's, or not an acknowledgement.",
    ["actor"],
)
DIRECT_HOPS_WAITING = Gauge(
    "actormesh_direct_hops_waiting",
    "Direct hops this process received for `actor` and has not started yet (with direct hops, the"
    " backlog the queue gauges do not see).",
    ["actor"],
)
_waiting: dict[str, list[Callable[[], int]]] = {}


def count_direct_hops_waiting(actor: str, probe: Callable[[], int]) -> Callable[[], None]:
    """Adds `probe` (one host's count) to `DIRECT_HOPS_WAITING{actor}`, read when scraped, summed over
    the hosts of `actor` in this process. Returns what takes it out again (the host stopped)."""
    probes = _waiting.get(actor)
    if probes is None:
        probes = _waiting[actor] = []
        DIRECT_HOPS_WAITING.labels(actor).set_function(lambda: sum(count() for count in probes))
    probes.append(probe)
    return lambda: probes.remove(probe)


# --- JetStream state, set by `bus.queue_metrics.QueueMetrics` in one process per mesh -----------------

QUEUE_PENDING = Gauge(
    "actormesh_queue_pending_messages",
    "Messages on a durable consumer's subject not yet delivered to any replica (the backlog).",
    ["consumer"],
)
QUEUE_ACK_PENDING = Gauge(
    "actormesh_queue_ack_pending_messages",
    "Messages delivered to a consumer's replicas and not acknowledged yet (being processed).",
    ["consumer"],
)
QUEUE_REDELIVERED = Gauge(
    "actormesh_queue_redelivered_messages",
    "Unacknowledged messages of a consumer that were delivered more than once.",
    ["consumer"],
)
QUEUE_WAITING = Gauge(
    "actormesh_queue_waiting_pull_requests",
    "Pull requests the consumer's replicas have waiting on the server (idle capacity).",
    ["consumer"],
)
DEAD_LETTERS = Gauge(
    "actormesh_dead_letters",
    "Records in the dead-letter stream now, by the actor that failed and reason class.",
    ["actor", "reason"],
)
STREAM_MESSAGES = Gauge("actormesh_stream_messages", "Messages stored in a mesh stream.", ["stream"])
STREAM_BYTES = Gauge("actormesh_stream_bytes", "Bytes stored in a mesh stream.", ["stream"])
QUEUE_METRICS_ERRORS = Counter(
    "actormesh_queue_metrics_errors",
    "Failed refreshes of the queue gauges (NATS unreachable or a request timed out).",
)
NATS_UP = Gauge(
    "actormesh_nats_up",
    "1 when the last refresh of the queue gauges got answers from JetStream, 0 when it failed.",
)
QUEUE_METRICS_UPDATED = Gauge(
    "actormesh_queue_metrics_last_success_timestamp_seconds",
    "Unix time of the last complete refresh of the queue gauges (stale gauges show here).",
)
