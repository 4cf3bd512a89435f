"""`bus.direct.HeldHops`: the hops a saturated host holds keep their origins alive, oldest first, and
are handed back (nak) when the host stops. Fake loop time."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest
from nats.aio.msg import Msg

from actormesh_runtime.bus.direct import HeldHops

pytestmark = pytest.mark.looptime

EVERY_S = 10.0  # the host's reset interval (a third of an ack wait of 30 s)


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


async def test_held_hops_come_back_oldest_first() -> None:
    held = HeldHops(EVERY_S)
    first, second = Origin(), Origin()
    now = time.time()
    held.hold(msg(first), now)
    held.hold(msg(second), now)

    assert len(held) == 2
    assert held.next() == (first, now)
    assert held.next() == (second, now)
    assert held.next() is None


async def test_a_held_hop_has_its_origin_kept_alive_and_its_reset_time_moved_on() -> None:
    held = HeldHops(EVERY_S)
    origin = Origin()
    stamped = time.time() - 10  # its timer ran 10 s before it got here: due at once
    held.hold(msg(origin), stamped)

    await asyncio.sleep(EVERY_S * 2.5)  # held while two more resets fall due
    hop = held.next()

    assert origin.kept_alive == 3
    assert hop is not None
    assert hop[0] is cast(Any, origin)
    assert hop[1] > stamped + 9, "the hop starts with the time of its last reset"


async def test_a_started_hop_is_no_longer_kept_alive_by_the_holder() -> None:
    # From `next()` on, the step's own timer (`_Inbound`) resets the origin: not two of them.
    held = HeldHops(EVERY_S)
    origin = Origin()
    held.hold(msg(origin), time.time())
    held.next()

    await asyncio.sleep(EVERY_S * 5)

    assert origin.kept_alive == 0


async def test_handing_back_naks_every_held_origin_and_stops_keeping_them_alive() -> None:
    held = HeldHops(EVERY_S)
    origins = [Origin(), Origin()]
    for origin in origins:
        held.hold(msg(origin), time.time())

    assert await held.hand_back() == 2
    await asyncio.sleep(EVERY_S * 5)

    assert [o.naks for o in origins] == [1, 1]
    assert [o.kept_alive for o in origins] == [0, 0], "the handed-back origins are left alone"
    assert len(held) == 0
