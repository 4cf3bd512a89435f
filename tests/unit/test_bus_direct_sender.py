"""`bus.direct.DirectSender`: a hop nobody receives (nats-server's no-responders answer) goes through
the stream by its fallback; a sent hop is remembered only for the return window, and the table of them
stays that size however long the sender runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from actormesh_runtime.bus.direct import FORGET_EVERY, NO_RESPONDERS, RETURN_WINDOW_S, DirectSender
from actormesh_runtime.catalog import Subjects

SUBJECTS = Subjects("t")
TARGET = SUBJECTS.direct("intent_analyzer")


class Subscription:
    async def unsubscribe(self) -> None:
        pass


class Connection:
    """Stands in for the NATS connection: records the hops' reply subjects, hands out one inbox."""

    def __init__(self) -> None:
        self.replies: list[str] = []
        self.on_return: Callable[[Msg], Awaitable[None]] | None = None

    def new_inbox(self) -> str:
        return "_INBOX.sender.test"

    async def subscribe(self, subject: str, *, cb: Callable[[Msg], Awaitable[None]]) -> Subscription:
        self.on_return = cb
        return Subscription()

    async def publish(self, subject: str, payload: bytes, *, reply: str = "") -> None:
        self.replies.append(reply)

    async def no_responders(self, reply: str) -> None:
        """What nats-server sends to a request's reply subject when no subscriber took it."""
        assert self.on_return is not None
        await self.on_return(Msg(_client=cast(Any, self), subject=reply, headers={"Status": NO_RESPONDERS}))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def _sender() -> tuple[DirectSender, Connection, Clock]:
    conn, clock = Connection(), Clock()
    sender = DirectSender(cast(NATS, conn), SUBJECTS, clock=clock)
    await sender.start()
    return sender, conn, clock


def _fallback(ran: list[int], n: int) -> Callable[[], Awaitable[None]]:
    async def fallback() -> None:
        ran.append(n)

    return fallback


async def test_a_hop_nobody_receives_goes_through_its_fallback_once() -> None:
    sender, conn, _ = await _sender()
    ran: list[int] = []
    await sender.send(TARGET, b"{}", origin="$JS.ACK.x", reset_at=1.0, fallback=_fallback(ran, 1))
    await sender.send(TARGET, b"{}", origin="$JS.ACK.y", reset_at=1.0, fallback=_fallback(ran, 2))

    await conn.no_responders(conn.replies[1])
    await conn.no_responders(conn.replies[1])  # a second answer for the same hop: nothing left to run
    await conn.no_responders("_INBOX.sender.test.not-a-token")
    await sender.stop()  # waits for the fallbacks it started

    assert ran == [2]


async def test_a_hop_is_remembered_for_the_return_window_only() -> None:
    sender, conn, clock = await _sender()
    ran: list[int] = []
    await sender.send(TARGET, b"{}", origin="$JS.ACK.old", reset_at=1.0, fallback=_fallback(ran, 0))
    clock.now += RETURN_WINDOW_S + 0.5
    for n in range(1, FORGET_EVERY + 1):  # the forgetting runs every FORGET_EVERY hops
        await sender.send(TARGET, b"{}", origin=f"$JS.ACK.{n}", reset_at=1.0, fallback=_fallback(ran, n))

    await conn.no_responders(conn.replies[0])  # past the window: received, long since
    await conn.no_responders(conn.replies[-1])
    await sender.stop()

    assert ran == [FORGET_EVERY]


async def test_the_sent_hops_table_holds_about_one_window_however_long_the_sender_runs() -> None:
    sender, conn, clock = await _sender()
    ran: list[int] = []
    step_s = 0.001
    for n in range(20_000):  # 20 s of hops at 1,000 a second, some answered as it goes
        await sender.send(TARGET, b"{}", origin=f"$JS.ACK.{n}", reset_at=1.0, fallback=_fallback(ran, n))
        if n % 1000 == 0:
            await conn.no_responders(conn.replies[-1])
        clock.now += step_s
    await sender.stop()

    window = RETURN_WINDOW_S / step_s
    assert window <= len(sender._sent) <= window + FORGET_EVERY  # what it remembers: one window
    assert ran == list(range(0, 20_000, 1000))


async def test_at_a_trickle_the_table_keeps_no_hop_older_than_the_window() -> None:
    sender, _, clock = await _sender()
    for n in range(5 * FORGET_EVERY):  # one hop every 3 s: each is out of the window before the next
        await sender.send(TARGET, b"{}", origin=f"$JS.ACK.{n}", reset_at=1.0, fallback=_fallback([], n))
        clock.now += RETURN_WINDOW_S + 1.0
    await sender.stop()

    # The last send was a forgetting one (the 5 * FORGET_EVERY-th): only that hop is still remembered.
    assert len(sender._sent) == 1
