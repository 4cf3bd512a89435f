"""`AckTimer`: keeps one JetStream delivery's ack timer from running out while this process has it.

JetStream redelivers a message whose replica says nothing for `ack_wait`. A process that works on a
message (`bus.host._Inbound`: its steps, their hand-on, the error path) or holds it for a free slot
(`bus.direct.HeldHops`) says so with an "in progress" ack once `every_s` has gone by since the last
reset, and stops before the message is settled. The time of the last reset that was sent travels
with a direct hop (wall clock), so the next process resets sooner when that is due; another
machine's clock is trusted `CLOCK_SLACK_S` less than ours.
"""

from __future__ import annotations

import asyncio
import logging
import time

from nats.aio.msg import Msg

log = logging.getLogger(__name__)

CLOCK_SLACK_S = 2.0
"""Allowance for clocks of different machines disagreeing about the reset time a hop carries: the
origin is kept alive this much earlier than one process would need to."""


class AckTimer:
    """Resets `msg`'s ack timer every `every_s` from `watch()` until `unwatch()`."""

    __slots__ = ("_after_s", "_beats", "_every_s", "_timer", "msg", "reset_at")

    def __init__(self, msg: Msg, every_s: float, reset_at: float | None = None) -> None:
        """`reset_at`: when another process last reset the timer (Unix time, its clock: a direct hop);
        None: it started with this delivery, now."""
        self.msg = msg
        self.reset_at = time.time() if reset_at is None else reset_at
        """When the last reset that was sent (or the delivery) started the timer: Unix time."""
        self._every_s = every_s
        self._after_s = every_s if reset_at is None else max(0.0, every_s - CLOCK_SLACK_S)
        self._timer: asyncio.TimerHandle | None = None
        self._beats: set[asyncio.Task[None]] = set()

    def watch(self) -> None:
        """Reset the timer when it is due (now, if it already is), then every `every_s`."""
        due_in = self.reset_at + self._after_s - time.time()
        if due_in <= 0:
            self._beat()
        else:
            self._timer = asyncio.get_running_loop().call_later(due_in, self._beat)

    def stop(self) -> None:
        """No more resets (one on its way still goes out): another `AckTimer` takes over."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def unwatch(self) -> None:
        """Before the message is settled: no more resets, and one already on its way is sent first (a
        reset after a delayed nak would stretch the delay to ack_wait). Idempotent."""
        self.stop()
        if self._beats:
            await asyncio.gather(*self._beats, return_exceptions=True)

    def _beat(self) -> None:
        # A task, not an await: the work goes on while the reset is published; kept referenced until
        # it is sent. A reset that fails (NATS gone) is left: the message is redelivered.
        beat = asyncio.get_running_loop().create_task(self._reset())
        self._beats.add(beat)
        beat.add_done_callback(self._sent)
        self._timer = asyncio.get_running_loop().call_later(self._every_s, self._beat)

    async def _reset(self) -> None:
        at = time.time()
        await self.msg.in_progress()
        self.reset_at = at  # only once sent: a hop passed on must not claim a reset that never happened

    def _sent(self, beat: asyncio.Task[None]) -> None:
        self._beats.discard(beat)
        if not beat.cancelled() and beat.exception() is not None:
            log.debug("in-progress ack not sent", exc_info=beat.exception())
