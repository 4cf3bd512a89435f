"""`bus.fusion.Colocated`: which co-located host may run the next step in memory."""

from __future__ import annotations

from dataclasses import dataclass

from actormesh_runtime.bus.fusion import Colocated
from actormesh_runtime.bus.host import ActorHost
from actormesh_runtime.catalog import ActorName, Subjects
from actormesh_runtime.settings import RuntimeSettings


@dataclass
class _Host:
    name: ActorName


def test_a_host_of_the_group_is_the_peer() -> None:
    group = Colocated()
    host = _Host(ActorName.INTENT_ANALYZER)
    group.join(host)  # type: ignore[arg-type]

    assert group.peer(ActorName.INTENT_ANALYZER) is host
    assert group.peer(ActorName.CONTEXT_RETRIEVER) is None, "not hosted here: publish to its inbox"


async def test_a_stopping_host_takes_no_fused_work() -> None:
    group = Colocated()
    actor = _Host(ActorName.INTENT_ANALYZER)  # the host reads only the actor's name before it starts
    host = ActorHost(actor, None, None, Subjects("unit"), RuntimeSettings(), colocated=group)  # type: ignore[arg-type]
    assert group.peer(ActorName.INTENT_ANALYZER) is host, "joins when built, before it fetches"

    await host.stop(0)

    assert group.peer(ActorName.INTENT_ANALYZER) is None


def test_leave_removes_only_that_host() -> None:
    group = Colocated()
    first, second = _Host(ActorName.INTENT_ANALYZER), _Host(ActorName.INTENT_ANALYZER)
    group.join(first)  # type: ignore[arg-type]
    group.join(second)  # type: ignore[arg-type]

    group.leave(second)  # type: ignore[arg-type]
    assert group.peer(ActorName.INTENT_ANALYZER) is first
    group.leave(first)  # type: ignore[arg-type]
    assert group.peer(ActorName.INTENT_ANALYZER) is None
