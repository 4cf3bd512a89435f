"""`bus.direct.HeldHops`: the hops a saturated host holds keep their origins alive, oldest first."""

from __future__ import annotations

import time
from typing import Any, cast

from nats.aio.msg import Msg

from actormesh_runtime.bus.direct import CLOCK_SLACK_S, HeldHops
from tests.support.eventually import eventually_async

ACK_WAIT_S = 30.0


class Origin:
    """Stands in for an origin delivery: counts what the holder did to it."""

    def __init__(self) -> None:
        self.kept_alive = 0
        self.naks = 0

    async def in_progress(self) -> None:
        self.kept_alive += 1

    async def nak(self) -> None:
        self.naks += 1


def msg(origin: Origin) -> Msg:
    return cast(Msg, origin)


def holder(keep_alive_after_s: float = 0.0) -> HeldHops:
    return HeldHops(keep_alive_after_s, ACK_WAIT_S)


async def test_held_hops_come_back_oldest_first() -> None:
    held = holder(keep_alive_after_s=60.0)
    first, second = Origin(), Origin()
    held.hold(msg(first), 1.0)
    held.hold(msg(second), 2.0)

    assert len(held) == 2
    assert held.next() == (first, 1.0)
    assert held.next() == (second, 2.0)
    assert held.next() is None
    await held.hand_back()


async def test_a_held_hop_has_its_origin_kept_alive_and_its_reset_time_moved_on() -> None:
    held = holder()
    origin = Origin()
    stamped = time.time() - 10  # its timer ran 10 s before it got here
    held.hold(msg(origin), stamped)

    await eventually_async(lambda: origin.kept_alive >= 1, what="the origin kept alive")
    hop = held.next()

    assert hop is not None
    assert hop[0] is cast(Any, origin)
    assert hop[1] > stamped + 9, "the hop starts with the time of its last reset"
    await held.hand_back()


async def test_a_hop_that_came_late_is_not_kept_alive_and_is_left_to_the_host_to_drop() -> None:
    late = time.time() - (ACK_WAIT_S + CLOCK_SLACK_S + 1)
    late_origin, fresh_origin = Origin(), Origin()
    held = holder()
    held.hold(msg(late_origin), late)
    held.hold(msg(fresh_origin), time.time() - 10)

    # One keeper round went by: it reset the fresh origin's timer, not the late one's.
    await eventually_async(lambda: fresh_origin.kept_alive >= 1, what="the fresh origin kept alive")

    assert late_origin.kept_alive == 0, "its origin is redelivered: keeping it alive would hold up the rerun"
    assert held.next() == (late_origin, late), "still held, with its reset time, for the host's check"
    await held.hand_back()


async def test_handing_back_naks_every_held_origin_and_stops_keeping_them_alive() -> None:
    held = holder()
    origins = [Origin(), Origin()]
    for origin in origins:
        held.hold(msg(origin), time.time())

    assert await held.hand_back() == 2

    assert [o.naks for o in origins] == [1, 1]
    assert len(held) == 0
    kept = [o.kept_alive for o in origins]
    later = Origin()
    held.hold(msg(later), time.time() - 10)  # a later hold starts a keeper of its own
    await eventually_async(lambda: later.kept_alive >= 1, what="the later hop kept alive")
    assert [o.kept_alive for o in origins] == kept, "the handed-back origins are left alone"
    await held.hand_back()
