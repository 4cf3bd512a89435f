"""Coalescing per-mesh wake-ups: every reconcile is started here.

Mesh events (created, spec changed, paused), child watch events (a Deployment edited or deleted, a
StatefulSet's status moving) and the periodic resync all end up here: `schedule(namespace, name)` asks
for one reconcile of that mesh after a short debounce (none for a mesh created or changed). Many
requests for the same mesh collapse into one pending run, and a request that arrives while a run is in
progress causes exactly one more run afterwards, so a burst of 30 child events costs one or two
reconciles, never 30. A request without delay also cuts a pending wait or retry backoff short: a
fixed spec does not wait out the broken one's backoff. Used by `state.py`; the reconcile itself is a
callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

MeshKey = tuple[str, str]
STATUS_TRIGGER = "status"
"""A wake-up for a status refresh only; any other trigger (a full pass) wins when both are pending."""


TRIGGER_ORDER: tuple[tuple[str, ...], ...] = (
    ("create", "update", "resume"),
    ("pause",),
    ("secret",),
    ("child",),
    ("resync",),
    (STATUS_TRIGGER,),
)
"""Strongest first: the reason a run that serves several requests is counted under (the `trigger`
label of the reconcile metrics); within one rank the latest wins. A status refresh is the only one
that is not a full pass."""
_RANK = {trigger: rank for rank, triggers in enumerate(TRIGGER_ORDER) for trigger in triggers}


def stronger(pending: str, new: str) -> str:
    """The trigger a pending run keeps when another arrives: the stronger in TRIGGER_ORDER, the new one
    at equal rank (a creation stays a creation when a child's event joins it; a full pass wins over a
    status refresh)."""
    weakest = len(TRIGGER_ORDER)
    return pending if _RANK.get(pending, weakest) < _RANK.get(new, weakest) else new


RunFn = Callable[[str, str, str], Awaitable[float | None]]
"""run(namespace, name, trigger) -> None, or a delay after which the mesh must be retried."""


@dataclass
class _Slot:
    task: asyncio.Task[None]
    trigger: str
    due: float
    """Loop time the next run starts."""
    since: float
    """Loop time the wait for the next run began (a status refresh is deferred at most `max_defer_s`)."""
    running: bool = False
    again: bool = False
    again_after: float = 0.0
    """The shortest delay asked for by the requests that arrived during the run."""
    poke: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when `due` moved, so the waiting worker looks again."""


class WakeupQueue:
    """One background task per mesh with pending work; see the module docstring."""

    def __init__(self, run: RunFn, *, debounce_s: float = 1.0, max_defer_s: float = 10.0) -> None:
        self._run = run
        self._debounce_s = debounce_s
        self._max_defer_s = max_defer_s
        self._slots: dict[MeshKey, _Slot] = {}
        self._closed = False

    def schedule(self, namespace: str, name: str, trigger: str, *, delay: float | None = None) -> None:
        """Ask for a run after `delay` (default: the debounce). A status refresh already waiting is
        pushed back by another one (trailing: one write once a rollout's counters stop moving, at most
        `max_defer_s` after the first request); a request without delay runs at once, even during a
        retry backoff; any other request joins the pending run as it is."""
        if self._closed:
            return
        key = (namespace, name)
        slot = self._slots.get(key)
        wait = self._debounce_s if delay is None else delay
        now = asyncio.get_running_loop().time()
        if slot is None:
            task = asyncio.create_task(self._worker(key), name=f"actormesh reconcile {namespace}/{name}")
            self._slots[key] = _Slot(task=task, trigger=trigger, due=now + wait, since=now)
            return
        if slot.running:
            slot.trigger = stronger(slot.trigger, trigger) if slot.again else trigger
            slot.again_after = min(slot.again_after, wait) if slot.again else wait
            slot.again = True
            return
        if trigger == STATUS_TRIGGER and slot.trigger == STATUS_TRIGGER:
            slot.due = min(max(slot.due, now + wait), slot.since + self._max_defer_s)
        elif delay == 0:
            slot.due = now
        slot.trigger = stronger(slot.trigger, trigger)
        slot.poke.set()

    async def _worker(self, key: MeshKey) -> None:
        loop = asyncio.get_running_loop()
        while True:
            slot = self._slots[key]
            while (left := slot.due - loop.time()) > 0:
                slot.poke.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(slot.poke.wait(), left)
            slot.running, slot.again = True, False
            ran = slot.trigger
            try:
                retry_in = await self._run(key[0], key[1], ran)
            except Exception:  # the callback reports its own failures; never let the worker die silently
                logger.exception("reconcile of %s/%s failed unexpectedly", *key)
                retry_in = None
            slot.running = False
            if retry_in is None and not slot.again:
                del self._slots[key]
                return
            if retry_in is not None:  # the failed run is owed again, with whatever arrived meanwhile
                slot.trigger = stronger(ran, slot.trigger) if slot.again else ran
            slot.since = loop.time()
            slot.due = slot.since + (retry_in if retry_in is not None else slot.again_after)
            if retry_in is not None and slot.again and slot.again_after == 0:
                slot.due = slot.since  # a new spec arrived during the failed run: no backoff for it

    def pending(self) -> int:
        return len(self._slots)

    async def close(self) -> None:
        self._closed = True
        tasks = [slot.task for slot in self._slots.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._slots.clear()
