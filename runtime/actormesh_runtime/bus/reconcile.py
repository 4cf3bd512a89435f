"""Putting the mesh's streams and an actor's consumer back as declared while the mesh runs.

Provisioning at start-up (`connection.open_bus`, `connection.ensure_consumer`) is not enough on day
two: an administrator (or an accident) may delete the work stream or a consumer, wipe the server's
store, or edit a limit or an ack wait by hand. A stream or consumer that is gone stalls the mesh
without a word (pull requests are answered 503 and nothing arrives), and a hand-edited one changes
the delivery rules under the running code. As the NACK controller and KubeRay do, the declared
configuration wins: what is missing is created again, what drifted is put back, and each is logged
as a warning naming the fields. The actor host (`bus.host`) has its `ConsumerWatch` do so when its
pull requests say the consumer is gone (`bus.pull.PullFeed` decides), and every `RECONCILE_EVERY_S`
besides; the hosts on one connection share their look at the streams (`StreamCheck`). The other
readers restore only their consumer (`restore_consumer`, through `bus.pull.pull_batches`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import weakref
from collections.abc import Iterable
from typing import Any

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError, ServerError

from actormesh_runtime.cancellation import cancel_and_wait
from actormesh_runtime.catalog import ActorName, Subjects
from actormesh_runtime.settings import RuntimeSettings

from .connection import (
    consumer_config,
    create_or_update_stream,
    dlq_stream_config,
    escalations_stream_config,
    work_stream_config,
)

log = logging.getLogger(__name__)

RECONCILE_EVERY_S = 30.0
"""How often a host checks its consumer and the streams although nothing looked wrong: a drifted
ack wait or limit changes nothing visible at once, so only a look finds it. One small API request
a host per period (its consumer), and three a connection (the streams: `StreamCheck`)."""
RESTORE_RETRY_S = (1.0, 2.0, 5.0)
"""Pauses between attempts to restore after one failed (the last repeats): JetStream may be off, or
the stream not back yet, for a while, and every attempt is four API requests."""

_UNLIMITED = -1
_STREAM_FIELDS: dict[str, Any] = {
    # field: the server's value when our config leaves it out (None)
    "subjects": None,
    "retention": None,
    "storage": None,
    "discard": None,
    "num_replicas": 1,
    "duplicate_window": None,
    "max_age": 0.0,
    "max_msgs": _UNLIMITED,
    "max_bytes": _UNLIMITED,
    "max_msg_size": _UNLIMITED,
    "max_msgs_per_subject": _UNLIMITED,
    "max_consumers": _UNLIMITED,
    "sealed": False,
    "deny_delete": False,
    "deny_purge": False,
}
_CONSUMER_FIELDS: dict[str, Any] = {
    "deliver_policy": None,
    "ack_policy": None,
    "ack_wait": None,
    "max_deliver": None,
    "filter_subject": None,
    "max_ack_pending": None,
    "deliver_subject": None,  # set: someone made it a push consumer, which a pull request cannot read
    "backoff": None,
}
_MUST_BE_ABSENT = {"deliver_subject", "backoff"}
"""Consumer fields we never set that must stay unset: a deliver subject makes it push based, a
backoff list overrides the host's own nak delays."""
_RECREATE_CONSUMER_FOR = {"deliver_subject", "deliver_policy"}
"""Drift JetStream refuses to update in place (pull to push and back: a 500; the deliver policy)."""


def drift(declared: Any, actual: Any, fields: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Field → (actual, declared) for every field in `fields` where `actual` differs from
    `declared`; a field `declared` leaves out (None) is compared with the server's default for it,
    or not at all when that default is None too (deliver_subject: expected to be absent)."""
    found = {}
    for name, default in fields.items():
        want = getattr(declared, name)
        want = default if want is None else want
        if want is None and name not in _MUST_BE_ABSENT:
            continue
        have = getattr(actual, name)
        have = default if have is None else have
        if _norm(have) != _norm(want):
            found[name] = (have, want)
    return found


def _norm(value: Any) -> Any:
    """Server answers round durations through nanoseconds and return lists for tuples."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, tuple):
        return list(value)
    return value


def _describe(changes: dict[str, tuple[Any, Any]]) -> dict[str, str]:
    return {name: f"{have!r} -> {want!r}" for name, (have, want) in changes.items()}


async def restore_stream(js: JetStreamContext, config: StreamConfig) -> str | None:
    """Create `config`'s stream if it is gone, or update it where it drifted; what was done (None:
    nothing was needed). Raises when the server cannot be asked; a drift the server refuses to
    change back (an immutable field) is logged as an error and left as it is."""
    changes: dict[str, tuple[Any, Any]] = {}

    def drifted(actual: StreamConfig) -> bool:
        changes.update(drift(config, actual, _STREAM_FIELDS))
        return bool(changes)

    try:
        outcome = await create_or_update_stream(js, config, drifted=drifted)
    except (BadRequestError, ServerError) as exc:
        log.error(
            "stream configuration drifted and cannot be put back: recreate it or restore the field by hand",
            extra={"stream": config.name, "drift": _describe(changes), "error": str(exc)},
        )
        return None
    if outcome == "created":
        log.warning("stream was gone: created it again, empty", extra={"stream": config.name})
    elif outcome == "updated":
        put_back = {"stream": config.name, "drift": _describe(changes)}
        log.warning("stream configuration drifted: put back", extra=put_back)
    return outcome


async def restore_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> str | None:
    """Create the durable consumer `config` if it is gone, or put it back where it drifted; what was
    done (None: nothing was needed). A change the server cannot undo in place (push instead of pull,
    another deliver policy) is undone by deleting and creating the consumer: in a work-queue stream
    the messages stay, and those it had delivered but not acked are delivered again (every hop is
    idempotent)."""
    assert config.durable_name is not None
    name = config.durable_name
    try:
        info = await js.consumer_info(stream, name)
    except NotFoundError:
        await js.add_consumer(stream, config)
        log.warning("consumer was gone: created it again", extra={"stream": stream, "consumer": name})
        return "created"
    changes = drift(config, info.config, _CONSUMER_FIELDS)
    if not changes:
        return None
    if changes.keys() & _RECREATE_CONSUMER_FOR:
        try:
            await js.delete_consumer(stream, name)
        except Exception as exc:
            # Each component's NATS user may delete its own consumer (catalog); a user from before that
            # was allowed, or one edited by hand, may not: say what to do.
            log.error(
                "consumer configuration drifted in a way that cannot be updated, and it cannot be deleted"
                " to create it again: delete it by hand (or allow $JS.API.CONSUMER.DELETE on it)",
                extra={"stream": stream, "consumer": name, "drift": _describe(changes), "error": repr(exc)},
            )
            raise
        await js.add_consumer(stream, config)
        log.warning(
            "consumer configuration drifted in a way that cannot be updated: deleted and created it again",
            extra={"stream": stream, "consumer": name, "drift": _describe(changes)},
        )
        return "recreated"
    await js.add_consumer(stream, config)  # same name: the server updates it
    log.warning(
        "consumer configuration drifted: put back",
        extra={"stream": stream, "consumer": name, "drift": _describe(changes)},
    )
    return "updated"


def declared_streams(subjects: Subjects, settings: RuntimeSettings) -> Iterable[StreamConfig]:
    return (
        work_stream_config(subjects, settings),
        dlq_stream_config(subjects, settings),
        escalations_stream_config(subjects, settings),
    )


class StreamCheck:
    """The mesh's streams put back as declared (`restore_stream`) for every host on one connection:
    hosts co-located in one process (`actormesh dev`, `actormesh actor A,B`) would each look at the
    same three streams every period (nine hosts: 27 requests where 3 do). Get it with `stream_check`."""

    def __init__(self, configs: list[StreamConfig]) -> None:
        self.configs = configs
        self._lock = asyncio.Lock()
        self._began = -math.inf
        """Loop time at which the last check that succeeded began."""

    async def restore(self, js: JetStreamContext, *, since: float) -> list[str]:
        """Put the streams back, unless a check that began at or after `since` (loop time) succeeded
        already: a periodic look passes a time one period back, one after an alarm (a stream may have
        just been deleted) the time it was raised. One entry per thing changed ("created ACTORMESH-m")."""
        async with self._lock:  # hosts alarmed together wait for one check, then find it fresh
            if self._began >= since:
                return []
            began = asyncio.get_running_loop().time()
            done = []
            for config in self.configs:
                outcome = await restore_stream(js, config)
                if outcome is not None:
                    done.append(f"{outcome} {config.name}")
            self._began = began
            return done


_stream_checks: weakref.WeakKeyDictionary[NATS, dict[str, StreamCheck]] = weakref.WeakKeyDictionary()


def stream_check(nc: NATS, subjects: Subjects, settings: RuntimeSettings) -> StreamCheck:
    """The one `StreamCheck` of `subjects`' mesh on `nc` (made by the first host to ask: co-located
    hosts share their settings)."""
    checks = _stream_checks.setdefault(nc, {})
    check = checks.get(subjects.mesh)
    if check is None:
        check = checks[subjects.mesh] = StreamCheck(list(declared_streams(subjects, settings)))
    return check


class ConsumerWatch:
    """One actor host's watch over its consumer and the mesh's streams: `restore` every `every_s`,
    and at once after `alarm` (the host's pull requests found no consumer). `unavailable` says why
    the consumer is not there while it is being restored (the host's readiness reports it)."""

    def __init__(
        self, nc: NATS, subjects: Subjects, actor: ActorName, settings: RuntimeSettings, *, every_s: float
    ) -> None:
        self.nc = nc
        self.subjects = subjects
        self.actor = actor
        self.settings = settings
        self.every_s = every_s
        self.unavailable: str | None = None
        self._check_now = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"consumer-watch:{self.actor.value}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    def alarm(self, reason: str) -> None:
        """The consumer is not there for pulls (`reason`): restore it now (logged once per outage)."""
        if self.unavailable is None:
            log.warning(
                "consumer unavailable: restoring it",
                extra={
                    "actor": self.actor.value,
                    "consumer": self.subjects.consumer(self.actor),
                    "status": reason,
                },
            )
        self.unavailable = reason
        self._check_now.set()

    async def _run(self) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        while not self.nc.is_closed:  # closed: a killed replica, whose host is never stopped
            if failures:  # not sooner however often the host alarms: each try costs requests
                await asyncio.sleep(RESTORE_RETRY_S[min(failures, len(RESTORE_RETRY_S)) - 1])
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._check_now.wait(), self.every_s)
            # After an alarm or a failure the streams are looked at afresh; otherwise a look another
            # host on this connection took within the period will do.
            since = loop.time() if failures or self._check_now.is_set() else loop.time() - self.every_s
            self._check_now.clear()
            try:
                await self._restore(since)
            except Exception as exc:  # JetStream off, NATS away: readiness says so meanwhile
                failures += 1
                log.log(
                    # Disconnected: the outage is logged already, and readiness says so.
                    logging.WARNING if self.nc.is_connected else logging.DEBUG,
                    "consumer not restored, retrying",
                    extra={"actor": self.actor.value, "error": str(exc) or repr(exc), "attempt": failures},
                )
                continue
            failures = 0
            self.unavailable = None

    async def _restore(self, since: float) -> None:
        """The streams first (`StreamCheck`): a consumer cannot exist without its stream."""
        js = self.nc.jetstream()
        await stream_check(self.nc, self.subjects, self.settings).restore(js, since=since)
        config = consumer_config(self.subjects, self.actor, self.settings)
        await restore_consumer(js, self.subjects.stream, config)
