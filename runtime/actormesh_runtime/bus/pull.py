"""Reading JetStream pull consumers, and deciding when one is gone.

`PullFeed`: how every pull consumer of the mesh is read, one open pull request at a time. It is also
the one place that decides a consumer is gone: it raises `ConsumerUnavailable` when the server says
the consumer is not there for pulls (503; 409 "Consumer Deleted" or "Consumer is push based"). nats-py's
own `fetch` cannot tell: it swallows every 409 as if it were a timeout, so a consumer made push based by
hand was asked again for ever and read by nobody.
Who reacts: the actor host (`bus.host`) alarms its `bus.reconcile.ConsumerWatch` (which puts the
streams back too, and reports on readiness); `pull_batches` and `pull_forever` call their `restore`
(`bus.reconcile.restore_consumer`) through `restore_gone_consumer`.

`pull_batches`: the loop of the readers that are not actor hosts: the history writer
(`history.service`, a batch per SQLite transaction). `pull_forever`: the same, handling messages one
by one in order: `bus.approval_executor` (approved actions) and `history.approval_ops` (their
outcomes). A failed fetch (the client is reconnecting) is tried again after a pause; `handle` owns
each message's ack, nak or term.
`delivery_of`: the two facts the host needs from a delivered message's ack subject.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

log = logging.getLogger(__name__)

RETRY_PAUSE_S = 0.2
"""After a failed fetch: long enough not to spin while the client reconnects."""
RESTORE_PAUSE_S = 2.0
"""After a failed attempt to create a consumer again: its stream may be on its way back."""
EXPIRY_SLACK_S = 0.25
"""How long past its expiry a pull request is still treated as open when the server's status closing
it (408) has not arrived: the server starts the clock when the request arrives. Were it treated as
closed first, the next request would be open beside it, and its late 408 taken for the new one's."""
_GONE_409 = ("consumer deleted", "consumer is push based")
"""409 descriptions that close a pull request because the consumer itself is not there for pulls
(the others: a limit of the request, a leadership change, a server shutting down)."""
_ACK_TOKENS_V1 = 9
"""`$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time ns>.<pending>`."""


class RequestEnded(TimeoutError):
    """A pull request was closed early by a status that does not say the consumer is gone: a 409 for
    a limit of the request ("Exceeded MaxRequestBatch" when a consumer's max_batch was set by hand below
    what the reader asks for, "Exceeded MaxRequestExpires", ...). A TimeoutError, as before, for callers
    that only wait; the readers' loops pause on it, since the next request is often answered the same
    at once (a busy loop)."""

    def __init__(self, status: str, description: str) -> None:
        self.status = status
        self.description = description
        super().__init__(f"{status} {description}".strip())


class ConsumerUnavailable(Exception):
    """A pull request was answered with a status that says nothing will ever be delivered to it: no
    consumer by that name (503: the server has no responder; the consumer or its stream was deleted,
    or JetStream is off), or one that is deleted now or push based (409). A next request gets the
    same answer at once: the caller has to restore the consumer, not ask again."""

    def __init__(self, status: str, description: str) -> None:
        self.status = status
        self.description = description
        super().__init__(f"{status} {description}".strip())


def delivery_of(msg: Msg) -> tuple[int, int]:
    """(delivery count, stream sequence) of a JetStream message, read from its ack subject.

    nats-py's `msg.metadata` parses every field, a timestamp into a datetime included, into three
    objects (~4 µs, once per hop); the host needs two integers (~0.6 µs). Any other form of the ack
    subject (the one with a domain and an account hash) goes through `msg.metadata`.
    """
    tokens = (msg.reply or "").split(".")
    if len(tokens) == _ACK_TOKENS_V1 and tokens[0] == "$JS" and tokens[1] == "ACK":
        return int(tokens[4]), int(tokens[5])
    meta = msg.metadata
    return meta.num_delivered, meta.sequence.stream


async def pull_batches(
    feed: PullFeed,
    batch: int,
    wait_s: float,
    handle_batch: Callable[[list[Msg]], Awaitable[None]],
    *,
    restore: Callable[[], Awaitable[object]],
    stopping: asyncio.Event | None = None,
    pause_s: float = RETRY_PAUSE_S,
) -> None:
    """Fetch up to `batch` messages at a time and `handle_batch` them, until cancelled or `stopping` is
    set (then what the open pull request still delivers is handed back: `PullFeed.hand_back`).

    `restore` creates the consumer again as declared: called when the feed says it is gone (deleted
    by hand, made push based, its stream deleted, the store wiped), which would otherwise be asked
    again for ever while the work waits unread. `pause_s` after any failed fetch, after a request a
    status ended early (`RequestEnded`, logged once per episode), and after `handle_batch` raised (logged;
    the loop goes on: what it did not ack is redelivered)."""
    gone = False
    limited = False  # a request ended by a status (RequestEnded) last time: logged once per episode
    while stopping is None or not stopping.is_set():
        try:
            msgs = await feed.fetch(batch, timeout=wait_s)
        except RequestEnded as exc:
            if not limited:
                log.warning("pull request ended early", extra={"consumer": feed.consumer, "error": str(exc)})
            gone, limited = False, True
            await asyncio.sleep(pause_s)
            continue
        except TimeoutError:
            gone = limited = False  # a request was open and nothing came: the consumer is there
            continue
        except ConsumerUnavailable as exc:
            gone = await restore_gone_consumer(restore, exc, already_logged=gone)
            await asyncio.sleep(pause_s)
            continue
        except Exception as exc:  # disconnected: the client reconnects, we retry after a pause
            log.warning("fetch failed", extra={"consumer": feed.consumer, "error": repr(exc)})
            await asyncio.sleep(pause_s)
            continue
        gone = limited = False
        try:
            await handle_batch(msgs)
        except Exception:  # an ack on a closed connection, say: what was not acked is redelivered
            log.exception("handling a batch failed", extra={"consumer": feed.consumer})
            await asyncio.sleep(pause_s)
    await feed.hand_back()


async def pull_forever(
    feed: PullFeed,
    batch: int,
    wait_s: float,
    handle: Callable[[Msg], Awaitable[None]],
    *,
    restore: Callable[[], Awaitable[object]],
    stopping: asyncio.Event | None = None,
) -> None:
    """`pull_batches`, handling each message in turn; once `stopping` is set, the rest of the batch is
    handed back (nak'ed: another reader gets it at once, not after the ack wait)."""

    async def handle_each(msgs: list[Msg]) -> None:
        for msg in msgs:
            if stopping is not None and stopping.is_set():
                with contextlib.suppress(Exception):
                    await msg.nak()
                continue
            await handle(msg)

    await pull_batches(feed, batch, wait_s, handle_each, restore=restore, stopping=stopping)


async def restore_gone_consumer(
    restore: Callable[[], Awaitable[object]], exc: Exception, *, already_logged: bool
) -> bool:
    """One attempt to create a consumer that is gone again (`ConsumerUnavailable`); True while it is
    not back (logged once per episode: pass the last answer as `already_logged`). `restore` is
    `bus.reconcile.restore_consumer`, which logs what it did."""
    if not already_logged:
        log.warning("consumer unavailable: restoring it", extra={"error": str(exc)})
    try:
        await restore()
    except Exception as failure:  # its stream not back yet, JetStream off: the next fetch tries again
        log.debug("consumer not restored yet", extra={"error": str(failure)})
        await asyncio.sleep(RESTORE_PAUSE_S)
        return True
    return False


class PullFeed:
    """A JetStream pull subscription read with at most one pull request open at a time, which stays
    open until its batch is delivered or it expires: what the actor host fetches with.

    nats-py's `fetch(n)` costs a request/reply per call whatever arrives: a pull request, then a
    status message (404/408) that closes it, and two asyncio Tasks per message it waits for. In a
    chain of actor processes messages arrive one by one, so that was one request and one status
    message per hop. Here `fetch(limit)` returns what the open request already delivered, and asks
    for a new batch only once the open one is used up or closed; it waits on the inbox queue itself.

    The open request never asks for more than `limit` (the caller's free slots) when it is sent, so
    messages fetched stay within the caller's in-flight bound; a status arriving late from an older
    request can let one more batch in early, never lose a message. Same interface as nats-py's
    `PullSubscription` for what the host uses (`fetch`, `unsubscribe`, `_sub`: the inbox).
    """

    def __init__(self, sub: JetStreamContext.PullSubscription, nc: NATS) -> None:
        self._pull = sub
        self._nc = nc
        self._sub: Subscription = sub._sub  # the core subscription of our deliver inbox
        self._queue: asyncio.Queue[Msg] = self._sub._pending_queue
        self._credit = 0
        """Messages the open pull request may still deliver (0: none open)."""
        self._open_until = 0.0
        """Loop time after which the open request is treated as expired without its 408."""
        self._ended_by: tuple[str, str] | None = None
        """The status that closed the last request early, other than 404/408 (nothing to deliver)."""

    async def fetch(self, batch: int, timeout: float) -> list[Msg]:  # noqa: ASYNC109 (nats-py's signature)
        """Up to `batch` messages: those already delivered, else the first to arrive within `timeout`
        (TimeoutError when none does)."""
        loop = asyncio.get_running_loop()
        msgs = self._take(batch)
        if msgs:
            return msgs
        if self._credit <= 0 or loop.time() >= self._open_until:
            await self._request(batch, expires_s=timeout)
        deadline = min(self._open_until, loop.time() + timeout)
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    msg = await self._queue.get()
            except TimeoutError:
                if loop.time() >= self._open_until:
                    self._credit = 0
                raise
            if self._accept(msg):
                return [msg, *self._take(batch - 1)]
            if self._credit <= 0:  # the request ended with nothing for us
                if self._ended_by is not None:
                    raise RequestEnded(*self._ended_by)
                raise TimeoutError

    @property
    def closed_by(self) -> float:
        """Loop time by which every pull request this feed sent has expired on the server (past, when
        none was sent or the last one's status came)."""
        return self._open_until if self._credit > 0 else 0.0

    @property
    def consumer(self) -> str:
        return str(self._pull._consumer)

    async def unsubscribe(self) -> None:
        await self._pull.unsubscribe()

    async def hand_back(self) -> int:
        """Nak what was delivered but not fetched, and what the open pull request still delivers until
        it is over (its status came or it expired), so that the server gives it to another reader at
        once, not after the ack wait: for a reader that stops fetching (the host hands back its own way,
        `ActorHost.stop`). How many."""
        loop = asyncio.get_running_loop()
        handed = 0
        # Those already delivered first: the request they came by may have expired long since (while
        # the reader was busy), and the loop below waits only while one is open.
        while not self._queue.empty():
            msg = self._queue.get_nowait()
            with contextlib.suppress(ConsumerUnavailable):
                if self._accept(msg):
                    with contextlib.suppress(Exception):
                        await msg.nak()
                    handed += 1
        while (remaining := self.closed_by - loop.time()) > 0:
            try:
                async with asyncio.timeout(remaining):
                    msg = await self._queue.get()
                if not self._accept(msg):
                    continue
            except (TimeoutError, ConsumerUnavailable):
                break
            with contextlib.suppress(Exception):
                await msg.nak()
            handed += 1
        return handed

    async def _request(self, batch: int, *, expires_s: float) -> None:
        request = f'{{"batch":{batch},"expires":{int(expires_s * 1e9)}}}'.encode()
        self._credit = batch
        self._open_until = asyncio.get_running_loop().time() + expires_s + EXPIRY_SLACK_S
        await self._nc.publish(self._pull._nms, request, reply=self._pull._deliver)

    def _take(self, limit: int) -> list[Msg]:
        """Up to `limit` messages already in the inbox, without waiting."""
        msgs: list[Msg] = []
        while len(msgs) < limit and not self._queue.empty():
            msg = self._queue.get_nowait()
            if self._accept(msg):
                msgs.append(msg)
        return msgs

    def _accept(self, msg: Msg) -> bool:
        """Book one inbox message: True for a message to process; a status (the server closing the
        request: 404, 408, 409; or a heartbeat) is dropped."""
        self._sub._pending_size -= len(msg.data)
        self._queue.task_done()  # nats-py's drain() waits for the queue to be worked off
        status = JetStreamContext.is_status_msg(msg)
        if status is None:
            self._credit -= 1
            return True
        if status != "100":  # not an idle heartbeat: the request is over
            self._credit = 0
            _raise_if_gone(status, msg)
            ended = status not in ("404", "408")
            self._ended_by = (status, _description(msg)) if ended else None
        return False


def _raise_if_gone(status: str, msg: Msg) -> None:
    if status == "503":  # its description only repeats the subject nobody answered on
        raise ConsumerUnavailable(status, "no responders: the consumer, its stream or JetStream is gone")
    description = _description(msg)
    if status == "409" and description.lower() in _GONE_409:
        raise ConsumerUnavailable(status, description)


def _description(msg: Msg) -> str:
    return str((msg.headers or {}).get("Description", "")).strip()
