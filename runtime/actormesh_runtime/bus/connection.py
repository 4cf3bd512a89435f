"""Connecting to NATS and provisioning the mesh's streams and consumers (idempotent, safe to race).

Every process opens the bus once with `open_bus(settings, name=...)`: connect (unless it already
holds a connection), then create or update the mesh's streams; each actor host then calls
`ensure_consumer` for its actor. The configs
are built by pure functions (`work_stream_config`, `dlq_stream_config`, `escalations_stream_config`,
`consumer_config`) so the
delivery rules are unit-tested without a server.
"""

from __future__ import annotations

import contextlib
import logging
import re
import ssl
import weakref
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    ConsumerInfo,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError, ServerError

from actormesh_runtime.catalog import ActorName, Subjects, inbox_prefix
from actormesh_runtime.net import without_credentials
from actormesh_runtime.settings import RuntimeSettings

log = logging.getLogger(__name__)

SPARE_DELIVERIES = 2
"""Server-side max_deliver = settings.max_deliver + this. The host takes the error path on delivery
`max_deliver`; the spares let a process that crashed during that last delivery be recovered (the host
then goes straight to the error path) instead of leaving the message stuck un-acked forever."""
DLQ_MAX_AGE_S = 14 * 24 * 3600.0
DLQ_MAX_MSGS = 100_000
ESCALATION_EVENTS_MAX_AGE_S = 7 * 24 * 3600.0
"""A notifier that was down for a week can still catch up; the records themselves live in SQLite."""
ESCALATION_EVENTS_MAX_MSGS = 100_000


RefusalListener = Callable[[str], None]
_REFUSED_PUBLISH = re.compile(r'permissions violation for publish to "([^"]+)"', re.IGNORECASE)
_refusal_listeners: weakref.WeakKeyDictionary[NATS, list[RefusalListener]] = weakref.WeakKeyDictionary()


def on_publish_refused(nc: NATS, listener: RefusalListener) -> Callable[[], None]:
    """Call `listener(subject)` whenever the server refuses a publish of `nc` (made by `connect`) because
    its user may not publish there; the server drops such a message and says so only in an error
    line. Returns what removes the listener."""
    listeners = _refusal_listeners.setdefault(nc, [])
    listeners.append(listener)

    def remove() -> None:
        with contextlib.suppress(ValueError):
            listeners.remove(listener)

    return remove


async def connect(settings: RuntimeSettings, *, name: str = "actormesh", reconnect: bool = True) -> NATS:
    """One long-lived connection per process that reconnects forever (readiness reports outages).

    `reconnect=False` is for a command a person runs once (`actormesh dlq`): a server that cannot be
    reached is an error at once, instead of a retry every second for as long as they wait.
    """
    servers = [s.strip() for s in settings.nats_url.split(",") if s.strip()]
    nc = NATS()

    def closing() -> bool:
        return bool(nc.is_closed or nc.is_draining)

    async def on_error(exc: Exception) -> None:
        log.log(
            logging.DEBUG if closing() else logging.WARNING,
            "nats connection error",
            extra={"error": repr(exc)},
        )
        refused = _REFUSED_PUBLISH.search(str(exc))
        if refused is not None:
            for listener in list(_refusal_listeners.get(nc, ())):
                listener(refused.group(1))

    async def on_disconnected() -> None:
        log.log(logging.DEBUG if closing() else logging.WARNING, "nats disconnected")

    async def on_reconnected() -> None:
        log.info("nats reconnected")

    await nc.connect(
        servers=servers,
        name=name,
        **credentials(settings),
        connect_timeout=5,
        reconnect_time_wait=1,
        # nats-py reads 0 as "no limit", like -1: 1 gives each server two tries, then NoServersError.
        max_reconnect_attempts=-1 if reconnect else 1,
        allow_reconnect=reconnect,
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
    )
    return nc


class NatsUnreachable(Exception):
    """The NATS server a command was pointed at did not accept a connection (refused, timed out, bad
    credentials). The message names the server without its password."""

    def __init__(self, url: str, cause: BaseException) -> None:
        self.url = without_credentials(url)
        super().__init__(f"cannot reach NATS at {self.url}: {type(cause).__name__} {cause}".rstrip())


async def reach_nats(settings: RuntimeSettings, *, name: str) -> NATS:
    """A connection to `settings.nats_url` that fails at once instead of retrying (`NatsUnreachable`): a
    person waiting on a command learns that the server is not there, rather than watching it reconnect
    forever. What the connection does once made is `connect`'s with `reconnect=False`."""
    try:
        return await connect(settings, name=name, reconnect=False)
    except Exception as exc:
        raise NatsUnreachable(settings.nats_url, exc) from exc


def credentials(settings: RuntimeSettings) -> dict[str, Any]:
    """nats-py `connect` options for NATS_USER/NATS_PASSWORD or NATS_TOKEN and the NATS_TLS_* files.

    A user connects with its own inbox prefix (`catalog.inbox_prefix`): the server lets each component
    subscribe only to its own replies, so the default `_INBOX` would make every request fail.
    """
    options: dict[str, Any] = {}
    if settings.nats_user is not None:
        options.update(
            user=settings.nats_user,
            password=settings.nats_password,
            inbox_prefix=inbox_prefix(settings.nats_user),
        )
    elif settings.nats_token is not None:
        options["token"] = settings.nats_token
    if settings.nats_tls_ca is not None or settings.nats_tls_cert is not None:
        context = ssl.create_default_context(cafile=settings.nats_tls_ca)
        if settings.nats_tls_cert is not None:
            context.load_cert_chain(settings.nats_tls_cert, settings.nats_tls_key)
        options["tls"] = context
    return options


def work_stream_config(subjects: Subjects, settings: RuntimeSettings) -> StreamConfig:
    return StreamConfig(
        name=subjects.stream,
        description=f"ActorMesh {subjects.mesh}: actor inboxes and history events",
        subjects=list(subjects.stream_subjects),
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        num_replicas=settings.nats_stream_replicas,
        discard=DiscardPolicy.OLD,
        duplicate_window=settings.duplicate_window_s,
    )


def dlq_stream_config(subjects: Subjects, settings: RuntimeSettings) -> StreamConfig:
    return _kept_stream_config(
        settings,
        name=subjects.dlq_stream,
        description=f"ActorMesh {subjects.mesh}: dead-lettered envelopes (actormesh dlq)",
        subjects=subjects.dlq_subjects,
        max_age_s=DLQ_MAX_AGE_S,
        max_msgs=DLQ_MAX_MSGS,
    )


def escalations_stream_config(subjects: Subjects, settings: RuntimeSettings) -> StreamConfig:
    """Limits retention (not a work queue): any number of consumers — a notifier, an audit log —
    each read every event at their own pace, and nothing piles up when nobody consumes."""
    return _kept_stream_config(
        settings,
        name=subjects.escalations_stream,
        description=f"ActorMesh {subjects.mesh}: escalation events (created, updated) for notifiers",
        subjects=subjects.escalation_event_subjects,
        max_age_s=ESCALATION_EVENTS_MAX_AGE_S,
        max_msgs=ESCALATION_EVENTS_MAX_MSGS,
    )


def _kept_stream_config(
    settings: RuntimeSettings,
    *,
    name: str,
    description: str,
    subjects: list[str],
    max_age_s: float,
    max_msgs: int,
) -> StreamConfig:
    """A limits-retention stream: read, not consumed away; the oldest go first past either bound."""
    return StreamConfig(
        name=name,
        description=description,
        subjects=subjects,
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=settings.nats_stream_replicas,
        discard=DiscardPolicy.OLD,
        max_age=max_age_s,
        max_msgs=max_msgs,
        duplicate_window=settings.duplicate_window_s,
    )


def consumer_config(subjects: Subjects, actor: ActorName, settings: RuntimeSettings) -> ConsumerConfig:
    """The durable pull consumer every replica of `actor` shares."""
    name = subjects.consumer(actor)
    return ConsumerConfig(
        name=name,
        durable_name=name,
        description=f"ActorMesh {subjects.mesh}: {actor.value} replicas",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait_s,
        max_deliver=settings.max_deliver + SPARE_DELIVERIES,
        filter_subject=subjects.actor(actor),
        max_ack_pending=max(1000, settings.actor_concurrency * 64),
    )


async def create_or_update_stream(
    js: JetStreamContext, config: StreamConfig, *, drifted: Callable[[StreamConfig], object] | None = None
) -> str | None:
    """Create `config`'s stream when there is none, else update it to `config`: what was done
    ("created", "updated"; None: nothing). Both ways of putting a stream as declared go through here:
    `ensure_streams` at start-up (`drifted` None: always update, so any changed field is applied) and
    `bus.reconcile.restore_stream` while running (only when `drifted(its config)` is true, and not at
    all when another process created it in between: that one made it as declared). Raises the
    server's refusal of an update: BadRequestError, or ServerError for a retention change to or from
    work-queue (err_code 10052): an immutable field."""
    assert config.name is not None
    try:
        actual: StreamConfig | None = (await js.stream_info(config.name)).config
    except NotFoundError:
        try:
            await js.add_stream(config)
            return "created"
        except BadRequestError:
            if drifted is not None:
                return None  # another process created it in between
            actual = None  # another process created it in between: fall through to update
    if drifted is not None and actual is not None and not drifted(actual):
        return None
    await js.update_stream(config)
    return "updated"


async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        outcome = await create_or_update_stream(js, config)
    except (BadRequestError, ServerError) as exc:
        # An immutable field differs: keep the existing stream, say so.
        log.warning("stream config not updated", extra={"stream": config.name, "error": str(exc)})
        return
    if outcome == "created":
        log.info("created stream", extra={"stream": config.name})


async def ensure_streams(js: JetStreamContext, subjects: Subjects, settings: RuntimeSettings) -> None:
    """Create or update the work-queue, dead-letter and escalation-event streams of this mesh."""
    await _ensure_stream(js, work_stream_config(subjects, settings))
    await _ensure_stream(js, dlq_stream_config(subjects, settings))
    await _ensure_stream(js, escalations_stream_config(subjects, settings))


async def open_bus(settings: RuntimeSettings, *, name: str = "actormesh", nc: NATS | None = None) -> NATS:
    """Connect (unless `nc` is given), then create or update the streams: every process's first step.

    A connection opened here is closed again when provisioning fails, so a caller that retries
    never leaks one; a given `nc` stays the caller's to close.
    """
    conn = nc if nc is not None else await connect(settings, name=name)
    try:
        await ensure_streams(conn.jetstream(), Subjects(settings.mesh_name), settings)
    except BaseException:
        if nc is None:
            with contextlib.suppress(Exception):
                await conn.close()
        raise
    return conn


async def ensure_consumer(
    js: JetStreamContext, subjects: Subjects, actor: ActorName, settings: RuntimeSettings
) -> ConsumerInfo:
    """Create or update (same name: the server merges) the durable consumer of `actor`."""
    return await js.add_consumer(subjects.stream, consumer_config(subjects, actor, settings))
