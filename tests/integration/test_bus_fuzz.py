"""Fuzzing envelope decoding on the bus: whatever bytes land in an actor's inbox, the consumer keeps
running, every message is settled (nothing left un-acked, nothing redelivered forever), and what is
not an envelope is dead-lettered once with a reason.

The payloads are generated from a fixed seed (reproducible): random bytes, truncated and bit-flipped
envelopes, JSON of the wrong shape, every field of a real envelope replaced by a value of the wrong
type, deep nesting, invalid UTF-8, and envelopes with huge fields up to the server's payload limit.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from nats.js.api import ConsumerInfo

from actormesh_runtime.bus import dlq
from actormesh_runtime.envelope import Envelope
from tests.support.bus_actors import (
    WORKER,
    ErrorEscalationActor,
    Recorder,
    SinkAggregator,
    WorkerActor,
    bus_rig,
    fast_settings,
    wait_until,
)

pytestmark = pytest.mark.integration

SEED = 20261205
WRONG_VALUES: list[Any] = [None, 0, -1, 1e308, True, "", "x" * 10_000, [], {}, [1, "a"], {"a": {"b": []}}]


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in a JSON document (objects and lists)."""
    found: list[tuple[Any, ...]] = []
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    for key, value in items:
        found.append((*prefix, key))
        found += _paths(value, (*prefix, key))
    return found


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(doc))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


def garbage(rng: random.Random, valid: dict[str, Any]) -> list[bytes]:
    """Payloads that must not decode as an envelope."""
    raw = json.dumps(valid).encode()
    out = [
        b"",
        b"null",
        b"[]",
        b'"an envelope"',
        b"42",
        b"{",
        b"\xff\xfe\x00garbage",
        b"[" * 100_000 + b"]" * 100_000,
        raw[: len(raw) // 2],
        raw.replace(b'"message_id"', b'"message_id\xff"'),
        json.dumps({**valid, "unexpected": 1}).encode(),
        json.dumps(_replace(valid, ("slip", "index"), 99)).encode(),
        json.dumps(_replace(valid, ("slip", "steps"), [])).encode(),
        json.dumps(_replace(valid, ("slip", "steps"), ["no_such_actor"])).encode(),
    ]
    out += [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 400))) for _ in range(20)]
    for _ in range(20):
        flipped = bytearray(raw)
        for _ in range(rng.randint(1, 8)):
            flipped[rng.randrange(len(flipped))] = rng.getrandbits(8)
        out.append(bytes(flipped))
    required = [p for p in _paths(valid) if len(p) == 1 or p[0] in ("slip", "headers", "screening")]
    for path in rng.sample(required, min(40, len(required))):
        out.append(json.dumps(_replace(valid, path, rng.choice(WRONG_VALUES))).encode())
    return out


MAX_PAYLOAD = 1024 * 1024
"""nats-server's default max_payload: the largest message the bus can carry at all."""


def near_the_limit(make: Callable[[str], Envelope]) -> list[Envelope]:
    """Valid envelopes with a huge message, the largest a few bytes under the server's limit, so the
    trace entry the host adds (or the error and the dead-letter wrapper) pushes it over."""
    out = []
    for spare in (300_000, 2_000, 200, 20):
        envelope = make("")
        envelope.message = "h" * (MAX_PAYLOAD - len(envelope.to_bytes()) - spare)
        out.append(envelope)
    return out


def still_envelopes(payloads: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Split into (not envelopes, envelopes): some mutations happen to stay valid."""
    bad, good = [], []
    for payload in payloads:
        try:
            Envelope.from_bytes(payload)
        except ValueError:
            bad.append(payload)
        else:
            good.append(payload)
    return bad, good


async def test_no_payload_crashes_a_consumer_and_garbage_is_dead_lettered_with_a_reason(
    nats_server: str,
) -> None:
    rng = random.Random(SEED)
    settings = fast_settings(nats_server)
    recorder = Recorder()
    async with bus_rig(settings) as rig:
        worker = await rig.add_host(WorkerActor(recorder))
        await rig.add_host(ErrorEscalationActor())
        await rig.add_host(SinkAggregator(rig.deps))
        valid = json.loads(rig.envelope("hello").to_bytes())
        huge = near_the_limit(rig.envelope)
        payloads = [*garbage(rng, valid), *(e.to_bytes() for e in huge)]
        bad, good = still_envelopes(payloads)
        inbox = rig.subjects.actor(WORKER)
        for payload in payloads:
            # No headers: the largest payloads fill the server's limit exactly as it counts it.
            await rig.js.publish(inbox, payload)

        async def settled() -> ConsumerInfo:
            return await rig.js.consumer_info(rig.subjects.stream, rig.subjects.consumer(WORKER))

        info = await settled()
        for _ in range(600):
            info = await settled()
            if info.num_pending == 0 and info.num_ack_pending == 0:
                break
            await wait_until(lambda: True, 0.1)
        assert (info.num_pending, info.num_ack_pending) == (0, 0), "every payload was settled"
        assert worker.bound, "the consumer is still bound and fetching"

        records = await dlq.list_records(rig.js, rig.subjects, limit=10_000)
        undecodable = [r.record for r in records if r.record.message_id is None]
        assert len(undecodable) == len(bad), "each undecodable payload is dead-lettered exactly once"
        assert all(r.reason and r.raw is not None and r.permanent for r in undecodable)
        assert all(len(r.raw or "") <= 65536 for r in undecodable)

        answered = {r.message_id: r for r in rig.results}
        for envelope in huge:  # too large to move on, yet answered (on the error path) and explained
            assert envelope.message_id in answered, "a huge envelope still gets an answer"
        too_large = [
            r.record for r in records if r.record.message_id and "bytes; the bus carries" in r.record.reason
        ]
        assert {r.message_id for r in too_large} <= {e.message_id for e in huge}
        assert len(too_large) >= 2, "the envelopes a trace entry pushes over the limit are dead-lettered"

        answer = await rig.ask(rig.envelope("still there?"))
        assert answer.response == "echo: still there?"
    assert good, "the run also covered payloads that decode (valid mutations, the huge envelope)"
