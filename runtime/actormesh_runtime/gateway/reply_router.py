"""Reply routing for one gateway process: one core-NATS subscription, futures keyed by message id.

Each gateway replica has its own instance id and reply prefix (`Subjects.replies(instance_id)`);
envelopes it submits carry `<prefix>.result` and `<prefix>.progress`, so a replica only ever receives
replies to its own requests. One wildcard subscription (`<prefix>.>`) serves every request of the
process; results wake the waiting request's future and progress events go to its listeners.

Several requests may wait for one message id (a retry with the same `Idempotency-Key` while the first
attempt still waits, `gateway/idempotency.py`): they share one future, and each has its own `Pending`
handle, so one of them leaving (timeout, closed socket) drops only its own wait. Progress listeners
are kept per message id the same way.

A result that arrives after its request gave up (504) is kept in a bounded map so
`GET /api/messages/{id}` can return it from this replica; other replicas, and this one after the
map evicted it, read it from the history store instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.msg import Msg
from pydantic import ValidationError

from actormesh_runtime.catalog import Subjects
from actormesh_runtime.envelope import FinalResult, ProgressEvent
from actormesh_runtime.screening import describe_invalid

log = logging.getLogger(__name__)

ProgressListener = Callable[[ProgressEvent], None]


@dataclass(eq=False)  # a handle: two waiters of one message id are two handles, never "equal"
class Pending:
    """One request waiting for its result (its future is shared by every waiter of the message id)."""

    message_id: str
    customer_email: str
    future: asyncio.Future[FinalResult]


class ReplyRouter:
    """Routes results and progress from the instance's reply subjects to waiting requests."""

    def __init__(self, subjects: Subjects, instance_id: str, *, keep: int = 2000) -> None:
        self.prefix = subjects.replies(instance_id)
        self._pending: dict[str, list[Pending]] = {}  # message id -> its waiters, sharing one future
        self._expired: OrderedDict[str, str] = OrderedDict()  # message id -> customer email
        self._late: OrderedDict[str, tuple[FinalResult, str]] = OrderedDict()
        self._listeners: dict[str, list[ProgressListener]] = {}
        self._keep = keep
        self._sub: Any = None

    @property
    def result_subject(self) -> str:
        return f"{self.prefix}.result"

    @property
    def progress_subject(self) -> str:
        return f"{self.prefix}.progress"

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def start(self, nc: Any) -> None:
        self._sub = await nc.subscribe(f"{self.prefix}.>", cb=self._on_message)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        for waiters in self._pending.values():
            if not waiters[0].future.done():
                waiters[0].future.cancel()
        self._pending.clear()
        self._listeners.clear()

    # ------------------------------------------------------------ requests

    def expect(self, message_id: str, customer_email: str) -> Pending:
        """Register before publishing, so a fast reply cannot arrive before anyone listens. A second
        waiter of a message id shares the first one's future: the one result answers both."""
        waiters = self._pending.setdefault(message_id, [])
        future = waiters[0].future if waiters else asyncio.get_running_loop().create_future()
        pending = Pending(message_id, customer_email, future)
        waiters.append(pending)
        return pending

    def listen(self, message_id: str, listener: ProgressListener) -> None:
        """Send this message's progress events to `listener` until `unlisten` (it may outlive the wait:
        the last actor's progress event arrives just after the result)."""
        self._listeners.setdefault(message_id, []).append(listener)

    def unlisten(self, message_id: str, listener: ProgressListener) -> None:
        listeners = self._listeners.get(message_id, [])
        with contextlib.suppress(ValueError):
            listeners.remove(listener)
        if not listeners:
            self._listeners.pop(message_id, None)

    async def wait(self, pending: Pending, timeout_s: float) -> FinalResult:
        """The result, or `TimeoutError`; either way the request is no longer pending afterwards.

        After a timeout (or a cancelled wait) the request is abandoned: its late result is kept.
        """
        try:
            result = await asyncio.wait_for(asyncio.shield(pending.future), timeout=timeout_s)
        except BaseException:
            self.abandon(pending)
            raise
        self.forget(pending)
        return result

    def abandon(self, pending: Pending) -> None:
        """Stop waiting for a request that was submitted (its deadline passed, or its client left):
        it is no longer pending, and its result, when it comes, is kept for later reads. Without this
        a wait cancelled before it got here (a WebSocket closed mid-chat) stayed pending for good.
        Other waiters of the same message id keep waiting; the result is kept only once none is left."""
        if not self._release(pending):
            return
        future = pending.future
        if future.done() and not future.cancelled() and future.exception() is None:
            # the result came as the wait gave up: keep it now, no later reply will bring it
            self._remember(self._late, pending.message_id, (future.result(), pending.customer_email))
        else:
            self._remember(self._expired, pending.message_id, pending.customer_email)

    def forget(self, pending: Pending) -> None:
        """Drop this request's wait, keeping nothing for later: it was answered (by the reply or the
        history store), or never submitted (publish failed)."""
        self._release(pending)

    def _release(self, pending: Pending) -> bool:
        """Remove this one waiter; True when it was the message id's last one."""
        waiters = self._pending.get(pending.message_id)
        if waiters is None or not any(w is pending for w in waiters):
            return False  # released already (a wait abandons, then its caller abandons again)
        waiters.remove(pending)
        if waiters:
            return False
        del self._pending[pending.message_id]
        return True

    def late_result(self, message_id: str) -> tuple[FinalResult, str] | None:
        """(result, customer email) of a result that arrived after its request timed out."""
        return self._late.get(message_id)

    # ------------------------------------------------------------ incoming

    async def _on_message(self, msg: Msg) -> None:
        kind = msg.subject.rsplit(".", 1)[-1]
        try:
            if kind == "result":
                self._on_result(FinalResult.model_validate_json(msg.data))
            elif kind == "progress":
                self._on_progress(ProgressEvent.model_validate_json(msg.data))
        except ValidationError as exc:
            error = describe_invalid(exc)[:300]
            log.warning("unreadable reply dropped", extra={"subject": msg.subject, "error": error})

    def _on_result(self, result: FinalResult) -> None:
        waiters = self._pending.get(result.message_id)
        if waiters:
            if not waiters[0].future.done():
                waiters[0].future.set_result(result)
            return
        email = self._expired.pop(result.message_id, None)
        if email is not None:
            self._remember(self._late, result.message_id, (result, email))
            log.info("late result kept", extra={"message_id": result.message_id})

    def _on_progress(self, event: ProgressEvent) -> None:
        for listener in list(self._listeners.get(event.message_id, ())):
            try:
                listener(event)
            except Exception:  # a broken listener must not break reply routing
                log.exception("progress listener failed")

    def _remember(self, store: OrderedDict[str, Any], key: str, value: Any) -> None:
        store[key] = value
        store.move_to_end(key)
        while len(store) > self._keep:
            store.popitem(last=False)
