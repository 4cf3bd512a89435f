"""Direct hops (`DIRECT_HOPS`): between actor processes, the envelope moves on over core NATS and the
chain is settled once, on the JetStream delivery it started from (its origin).

Per hop through the stream a process pays a pull, an acked publish (a round trip to the stream's
store) and an ack, and nats-server stores and delivers the envelope once more; a direct hop is one
core publish. What keeps "nothing is lost": the origin delivery stays unacked until the host that
ends the chain (end of the slip, error path) acks it; every hop carries the origin's ack subject
(`encode_hop`). A hop lost on the way (its process crashed, or it was
dropped) leaves the origin unacked, so JetStream redelivers it after `ack_wait` and the chain runs
again from its first step, as a crashed fused chain does (`bus.fusion`): side effects keep their
idempotency keys, the result's history event its message id. A failed step is retried where its
hop arrived (below). While a step runs, its host resets the origin's ack timer (`+WPI`) every third
of `ack_wait` (`bus.ack_timer`); the hop says when it was last reset (wall clock: the hops run on
different machines, hence `CLOCK_SLACK_S`), so the next host resets it sooner when that is due.

Only the actor whose consumer delivered the origin may settle it (its NATS user's permissions: an ack
subject carries no verb, so a user that may publish there may ack, nak or terminate any delivery). A
host of another actor therefore sends its ack, nak, term or in-progress as a *settle*
(`RemoteOrigin`) to the origin actor's direct subject, where one of that actor's processes checks it
and publishes it to the ack subject (`settle_of`). The check is a seal: an HMAC of the ack subject
that the origin's process computed when it sent the first hop, keyed by its NATS credential, which
only that actor's processes hold. So a process can settle only the origins of hops it was sent,
chains it could already drop by not handing them on, not any delivery whose ack subject it guessed.
A settle nobody receives (every process of the origin actor gone) is lost: the origin is then
redelivered after its ack wait, as after a lost hop.

A hop's payload is one line, `<origin ack subject> <reset time> <seal>`, then the envelope as it
would be published to the stream; a settle's, `settle <origin ack subject> <seal>`, then the verb.
Not NATS headers: nats-py checks header values character by character, ~60 µs a hop under the
profiler, almost what decoding the whole envelope costs.

A hop with no receiver at all (no process of that actor subscribed) would only be redelivered after
`ack_wait`, again and again until the deliveries run out. Each hop is therefore sent with a reply
subject in the sender's own inbox: nats-server answers a message nobody receives with a 503 status
there, and the sender then publishes the envelope through the stream instead (`DirectSender`), so a
stopped actor gets its work when it comes back, as without direct hops. A hop the server refuses
because the sender's NATS user may not publish direct hops (the setting switched on before the
server's permissions were, during a rollout) takes the same way, and so do the hops to that actor for
`REFUSED_PAUSE_S` after.

A host whose steps are all busy holds further hops (`HeldHops`) and keeps their origins alive while
they wait, as a message waits in the stream without a clock running. A hop that arrives already past
its origin's ack wait (it was held up on the way) is dropped (`expired`): JetStream has redelivered
the origin, or is about to, and running the old hop as well would do the chain twice and answer
twice. Dropping one never loses anything, as the origin is still unacked; the clock slack only makes
the host keep a hop a little longer.

A step that fails transiently is retried by the host its hop reached, from the hop's envelope, after
its backoff (`ActorHost._retry_or_fail`): a nak of the origin would redo every step before it.

Trade-offs (docs/bus.md): a crash redoes every step from the origin; the actor consumers
after the first step no longer show a backlog (the queue gauges).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from prometheus_client import Counter

from actormesh_runtime.catalog import ActorName, Subjects
from actormesh_runtime.observability import metrics

from .ack_timer import CLOCK_SLACK_S, AckTimer
from .connection import on_publish_refused

log = logging.getLogger(__name__)

RETURN_WINDOW_S = 2.0
"""How long a sent hop is remembered in case nats-server answers it with no-responders; the answer
takes one round trip to the server, so anything older was received."""
REFUSED_PAUSE_S = 5.0
"""After the server refused a direct hop to an actor, hops to it go through the stream this long."""
FORGET_EVERY = 64
"""Hops sent between two sweeps of the ones that can no longer come back."""
NO_RESPONDERS = "503"

Fallback = Callable[[], Coroutine[Any, Any, None]]


SETTLE = b"settle "
"""How a settle's payload starts (a hop's starts with its origin's ack subject, `$JS.ACK.…`)."""
_VERBS = frozenset({Msg.Ack.Ack, Msg.Ack.Progress, Msg.Ack.Term, Msg.Ack.Nak})


def seal_key(credential: str | None) -> bytes:
    """The key a process seals its own consumer's origins with (`seal`): derived from its NATS password
    or token, which every process of the same actor (or group) shares and no other actor's user holds.
    Without a credential the server checks no permissions either, and the empty key seals nothing."""
    return hashlib.sha256(b"actormesh direct-hop seal\0" + (credential or "").encode()).digest()


def seal(key: bytes, origin: str) -> str:
    """The seal a settle of `origin` (an ack subject) must carry for its actor to carry it out."""
    return hmac.new(key, origin.encode(), hashlib.sha256).hexdigest()[:32]


def encode_hop(origin: str, reset_at: float, envelope: bytes, sealed: str = "") -> bytes:
    """A direct hop's payload: the origin's ack subject (`$JS.ACK.…`), the Unix time its ack timer
    was last started or reset, and its seal, then the envelope."""
    return f"{origin} {reset_at!r} {sealed}\n".encode() + envelope


@dataclass
class RemoteOrigin(Msg):
    """The origin of a direct hop that another actor's consumer delivered: its ack, nak, term and
    in-progress go as settles to that actor's direct subject (`settle_to`), with the origin's seal."""

    seal: str = ""
    settle_to: str = ""

    async def ack(self) -> None:
        self._check_reply()
        await self._settle(Msg.Ack.Ack)
        self._ackd = True

    async def nak(self, delay: float | None = None) -> None:
        self._check_reply()
        verb = Msg.Ack.Nak
        if delay:
            verb += b" " + json.dumps({"delay": int(delay * 10**9)}).encode()
        await self._settle(verb)
        self._ackd = True

    async def in_progress(self) -> None:
        await self._settle(Msg.Ack.Progress)

    async def term(self) -> None:
        self._check_reply()
        await self._settle(Msg.Ack.Term)
        self._ackd = True

    async def _settle(self, verb: bytes) -> None:
        await self._client.publish(self.settle_to, SETTLE + f"{self.reply} {self.seal}\n".encode() + verb)


def origin_of(nc: NATS, msg: Msg, subjects: Subjects, consumer: str) -> tuple[Msg, float] | None:
    """The origin delivery a direct hop belongs to, as a message this host can ack, nak, term and
    keep alive (its reply is the origin's ack subject, its data the envelope; a `RemoteOrigin` unless
    `consumer`, ours, delivered it), and when its ack timer was last reset. None when the hop names
    no origin of this mesh's stream and actors: there is nothing to settle, so it cannot be processed."""
    head, newline, envelope = msg.data.partition(b"\n")
    origin, _, rest = head.decode(errors="replace").partition(" ")
    reset, _, sealed = rest.partition(" ")
    prefix = f"$JS.ACK.{subjects.stream}."
    if not newline or not origin.startswith(prefix):
        return None
    try:
        reset_at = float(reset)
    except ValueError:
        reset_at = 0.0  # unknown: treat the timer as due for a reset
    owner = origin[len(prefix) :].partition(".")[0]
    if owner == consumer:
        return Msg(_client=nc, subject=msg.subject, reply=origin, data=envelope), reset_at
    if owner not in _CONSUMERS:
        return None
    settle_to = subjects.direct(_CONSUMERS[owner])
    return RemoteOrigin(
        _client=nc, subject=msg.subject, reply=origin, data=envelope, seal=sealed, settle_to=settle_to
    ), reset_at  # fmt: skip


_CONSUMERS = {Subjects("any").consumer(actor): actor for actor in ActorName}
"""Consumer name -> actor (`Subjects.consumer` names a consumer alike in every mesh)."""


def settle_of(data: bytes, stream: str, consumer: str, key: bytes) -> tuple[str, bytes] | None:
    """A settle sent to this actor (`RemoteOrigin`): the ack subject and the verb to publish there, or
    None if it is not one this process may carry out: not one of `consumer`'s deliveries in `stream`,
    a seal that `key` did not make, or anything but a JetStream acknowledgement."""
    head, newline, verb = data.partition(b"\n")
    origin, _, sealed = head[len(SETTLE) :].decode(errors="replace").partition(" ")
    if not newline or not head.startswith(SETTLE) or not origin.startswith(f"$JS.ACK.{stream}.{consumer}."):
        return None
    if not hmac.compare_digest(sealed.encode(), seal(key, origin).encode()):
        return None
    word, _, args = verb.partition(b" ")
    if word not in _VERBS or (args and not (word == Msg.Ack.Nak and _nak_delay(args))):
        return None
    return origin, verb


def _nak_delay(args: bytes) -> bool:
    """`-NAK`'s one argument: `{"delay": <nanoseconds>}`."""
    try:
        parsed = json.loads(args)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.keys() == {"delay"} and type(parsed["delay"]) is int


class DirectSender:
    """Sends direct hops from one host, and routes a hop nobody received to its fallback."""

    def __init__(self, nc: NATS, subjects: Subjects, clock: Callable[[], float] = time.monotonic) -> None:
        self.nc = nc
        self.subjects = subjects
        self._clock = clock
        self._sent: dict[int, tuple[float, str, Fallback]] = {}
        """Hops that may still come back, by reply token. Tokens count up as hops are sent."""
        self._refused_until: dict[str, float] = {}
        self._unlisten: Callable[[], None] | None = None
        self._inbox = ""
        self._next = 0
        self._oldest = 1
        """No token below this one is in `_sent`."""
        self._returns: Subscription | None = None
        self._fallbacks: set[asyncio.Task[None]] = set()
        self._sent_counters: dict[str, Counter] = {}
        """`DIRECT_HOPS_SENT` by subject, resolved once: `.labels()` costs a lock and a dict lookup."""

    async def start(self) -> None:
        self._inbox = self.nc.new_inbox()  # within the user's inbox prefix: allowed to subscribe
        self._returns = await self.nc.subscribe(f"{self._inbox}.*", cb=self._on_return)
        self._unlisten = on_publish_refused(self.nc, self._on_refused)

    async def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self._returns is not None:
            await self._returns.unsubscribe()
            self._returns = None
        if self._fallbacks:
            await asyncio.gather(*self._fallbacks, return_exceptions=True)

    async def send(
        self,
        subject: str,
        payload: bytes,
        *,
        origin: str,
        reset_at: float,
        fallback: Fallback,
        sealed: str = "",
    ) -> None:
        """Publish one hop; if nobody receives it, `fallback` runs (it must move the envelope on
        through the stream and settle the origin)."""
        now = self._clock()
        if self._refused_until.get(subject, 0.0) > now:
            _diverted(subject, "refused")
            await fallback()
            return
        self._next += 1
        token = self._next
        self._sent[token] = (now, subject, fallback)
        if token % FORGET_EVERY == 0:
            self._forget(now - RETURN_WINDOW_S)
        hop = encode_hop(origin, reset_at, payload, sealed)
        await self.nc.publish(subject, hop, reply=f"{self._inbox}.{token}")
        sent = self._sent_counters.get(subject)
        if sent is None:
            sent = self._sent_counters[subject] = metrics.DIRECT_HOPS_SENT.labels(_actor_of(subject))
        sent.inc()

    def _forget(self, before: float) -> None:
        """Drop the hops sent before `before`. Tokens count up with the clock, so this walks from the
        oldest token to the first one still inside the window, each token once over the sender's life
        (not the whole table every time: it holds a couple of seconds' worth of hops)."""
        while self._oldest <= self._next:
            sent = self._sent.get(self._oldest)
            if sent is not None:
                if sent[0] >= before:
                    return
                del self._sent[self._oldest]
            self._oldest += 1

    async def _on_return(self, msg: Msg) -> None:
        if JetStreamContext.is_status_msg(msg) != NO_RESPONDERS:
            return
        try:
            token = int(msg.subject.rsplit(".", 1)[-1])
        except ValueError:
            return
        sent = self._sent.pop(token, None)
        if sent is None:
            return
        log.info("no process receives a direct hop: it goes through the stream", extra={"hop": sent[1]})
        _diverted(sent[1], "no_receiver")
        self._fall_back(sent[2])

    def _on_refused(self, subject: str) -> None:
        """The server refused a publish of our connection: if it was a direct hop, every hop sent there
        lately was refused too (permissions are per subject), and none was delivered."""
        if not subject.startswith(self.subjects.direct_prefix):
            return
        log.warning("direct hops refused by the server: through the stream for now", extra={"hop": subject})
        self._refused_until[subject] = self._clock() + REFUSED_PAUSE_S
        for token, (_, sent_to, fallback) in list(self._sent.items()):
            if sent_to == subject:
                del self._sent[token]
                _diverted(subject, "refused")
                self._fall_back(fallback)

    def _fall_back(self, fallback: Fallback) -> None:
        # Its own task: the publish waits for the stream, and the callers must not wait for it.
        task = asyncio.create_task(fallback())
        self._fallbacks.add(task)
        task.add_done_callback(self._fallbacks.discard)


def expired(reset_at: float, ack_wait_s: float, now: float) -> bool:
    """Whether a hop whose origin's ack timer was last (re)started at `reset_at` (Unix time, another
    machine's clock) has certainly outlived it: the origin is redelivered, so the hop must not run.
    An unknown reset time (0: unreadable) is not taken as expired."""
    return reset_at > 0 and now - reset_at > ack_wait_s + CLOCK_SLACK_S


def _actor_of(subject: str) -> str:
    """The actor a direct subject (`Subjects.direct`) belongs to: its last token."""
    return subject.rsplit(".", 1)[-1]


def _diverted(subject: str, reason: str) -> None:
    metrics.DIRECT_HOPS_DIVERTED.labels(_actor_of(subject), reason).inc()


class HeldHops:
    """Direct hops a saturated host has received but not started, oldest first.

    nats-py hands a subscription's messages to its callback one at a time; a host that waited there
    for a free slot would leave the hops behind it in the client's buffer, where nobody keeps their
    origins alive, so a backlog longer than the ack wait would rerun every chain in it from its first
    step. Held here instead, each origin's ack timer is reset while it waits (`AckTimer`, as for a
    running step). The host drops a hop that came late before holding it (`expired`).
    """

    def __init__(self, keep_alive_after_s: float) -> None:
        """`keep_alive_after_s`: the host's reset interval (`ActorHost.keep_alive_after_s`)."""
        self._hops: deque[AckTimer] = deque()
        self._every_s = keep_alive_after_s

    def __len__(self) -> int:
        return len(self._hops)

    def hold(self, origin: Msg, reset_at: float) -> None:
        timer = AckTimer(origin, self._every_s, reset_at)
        timer.watch()
        self._hops.append(timer)

    def next(self) -> tuple[Msg, float] | None:
        """The oldest held hop (its origin and when its ack timer was last reset), or None; the step's
        own timer takes over from there. The host checks `expired` before it starts one: a hop whose
        resets could not be sent (NATS gone) may have grown late while held."""
        if not self._hops:
            return None
        timer = self._hops.popleft()
        timer.stop()
        return timer.msg, timer.reset_at

    async def hand_back(self) -> int:
        """Nak every held origin (the host is stopping): their chains rerun elsewhere at once (another
        actor's origin: once a process of that actor carries out the nak). Returns how many."""
        handed_back = 0
        while self._hops:
            timer = self._hops.popleft()
            await timer.unwatch()
            with contextlib.suppress(Exception):
                await timer.msg.nak()
            handed_back += 1
        return handed_back
