"""`bus.ack_timer.AckTimer`: a message being worked on has its ack timer reset every third of ack_wait
(the host's interval), at once when one is already due, and no more once it is to be settled; the reset
time it passes on is one that was sent. Fake loop time."""

from __future__ import annotations

import asyncio
import time
from typing import cast

import pytest
from nats.aio.msg import Msg

from actormesh_runtime.bus.ack_timer import CLOCK_SLACK_S, AckTimer
from actormesh_runtime.bus.host import KEEP_ALIVE_FRACTION

pytestmark = pytest.mark.looptime

ACK_WAIT_S = 3.0
EVERY_S = ACK_WAIT_S * KEEP_ALIVE_FRACTION  # 1 s


class Delivery:
    """Stands in for the message: records when (loop time) each in-progress ack went out."""

    def __init__(self, *, fail: bool = False, slow_s: float = 0.0) -> None:
        self.resets: list[float] = []
        self.fail = fail
        self.slow_s = slow_s

    async def in_progress(self) -> None:
        if self.slow_s:
            await asyncio.sleep(self.slow_s)
        if self.fail:
            raise ConnectionError("NATS gone")
        self.resets.append(asyncio.get_running_loop().time())


def timer_for(delivery: Delivery, reset_at: float | None = None) -> AckTimer:
    return AckTimer(cast(Msg, delivery), EVERY_S, reset_at)


async def test_a_short_step_sends_no_reset() -> None:
    delivery = Delivery()
    running = timer_for(delivery)

    running.watch()
    await asyncio.sleep(EVERY_S * 0.9)
    await running.unwatch()
    await asyncio.sleep(EVERY_S * 5)

    assert delivery.resets == []


async def test_a_long_step_resets_every_third_of_ack_wait_until_it_ends() -> None:
    delivery = Delivery()
    running = timer_for(delivery)
    start = asyncio.get_running_loop().time()

    running.watch()
    await asyncio.sleep(EVERY_S * 3.5)  # a step of 3.5 s against an ack wait of 3 s
    await running.unwatch()
    await asyncio.sleep(EVERY_S * 5)

    assert [round(t - start, 3) for t in delivery.resets] == [1.0, 2.0, 3.0]


async def test_a_step_whose_timer_is_already_due_resets_at_once() -> None:
    # A direct hop whose sender last reset the timer 1.5 s ago (another machine's clock).
    delivery = Delivery()
    running = timer_for(delivery, reset_at=time.time() - 1.5)
    start = asyncio.get_running_loop().time()

    running.watch()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    await running.unwatch()

    assert [round(t - start, 3) for t in delivery.resets] == [0.0]


async def test_another_machines_reset_time_is_trusted_the_clock_slack_less() -> None:
    # Reset 0.1 s ago by the sender: our own reset would be due in 0.9 s, but the sender's clock may
    # be CLOCK_SLACK_S behind ours, so the receiver resets at once.
    assert CLOCK_SLACK_S > EVERY_S
    delivery = Delivery()
    running = timer_for(delivery, reset_at=time.time() - 0.1)

    running.watch()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    await running.unwatch()

    assert len(delivery.resets) == 1


async def test_a_reset_on_its_way_goes_out_before_the_step_is_settled() -> None:
    # The publish of a reset takes a while; unwatch (before the ack or nak) waits for it, so no
    # reset can follow a settle (one after a delayed nak would stretch the delay to ack_wait).
    delivery = Delivery(slow_s=0.5)
    running = timer_for(delivery)

    running.watch()
    await asyncio.sleep(EVERY_S + 0.1)  # the first reset started, not yet sent
    assert delivery.resets == []
    await running.unwatch()

    assert len(delivery.resets) == 1


async def test_a_reset_that_fails_does_not_fail_the_step_nor_count_as_a_reset() -> None:
    delivery = Delivery(fail=True)
    started_at = time.time() - 1.5  # a direct hop's: due at once
    running = timer_for(delivery, reset_at=started_at)

    running.watch()
    await asyncio.sleep(EVERY_S * 2.5)
    await running.unwatch()  # no exception: the message is redelivered if NATS is really gone

    # Passed on with a hop, a reset that never reached NATS would make the next process trust an
    # origin that may be redelivered already.
    assert running.reset_at == started_at


async def test_a_reset_that_was_sent_moves_the_reset_time_on() -> None:
    delivery = Delivery()
    started_at = time.time() - 1.5
    running = timer_for(delivery, reset_at=started_at)

    running.watch()
    await asyncio.sleep(0)
    await running.unwatch()

    assert running.reset_at > started_at + 1


async def test_unwatch_twice_is_harmless_and_nothing_follows_it() -> None:
    # The retry path stops the resets before its nak; the chain's end stops them again.
    delivery = Delivery()
    running = timer_for(delivery, reset_at=time.time() - 5)

    running.watch()
    await running.unwatch()
    await running.unwatch()
    await asyncio.sleep(EVERY_S * 5)

    assert len(delivery.resets) == 1, "the reset that was due, then none"
