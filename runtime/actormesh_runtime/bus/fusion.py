"""Hop fusion: the actor hosts of one process that hand envelopes to each other in memory.

When the next step on the routing slip is an actor hosted in the same process, publishing the
envelope to its inbox only to fetch it back costs a JetStream round trip, an encode, a decode and
an ack per hop. A `Colocated` group lets the host that fetched a message run the following steps
itself (Flink's operator chaining is the model): the chain ends at the first step hosted elsewhere
(one acked, de-duplicated publish, as for an unfused hop) or at the end of the slip, and only then is
the inbound message acked. A crash anywhere in the chain therefore redelivers the inbound message and
the whole chain runs again; side effects carry idempotency keys and the chain's publish carries the
same `Nats-Msg-Id` it would have had unfused, so every hop still takes effect once.

`local.LocalMesh` puts its hosts in one group (when `HOP_FUSION` is on); `actormesh actor NAME` hosts
one actor, so nothing fuses there. The host's side of the chain is in `bus.host`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actormesh_runtime.catalog import ActorName

if TYPE_CHECKING:
    from .host import ActorHost


class Colocated:
    """The hosts of one process that may be chained. A host joins when built and leaves on stop."""

    def __init__(self) -> None:
        self._hosts: dict[ActorName, ActorHost] = {}

    def join(self, host: ActorHost) -> None:
        # One host per actor: a second replica in the same process would just share the chain.
        self._hosts.setdefault(host.name, host)

    def leave(self, host: ActorHost) -> None:
        if self._hosts.get(host.name) is host:
            del self._hosts[host.name]

    def peer(self, name: ActorName) -> ActorHost | None:
        """The host that can run step `name` in memory now, or None (publish to its inbox instead).

        A stopping host has left the group (first thing in its stop()), so it takes no fused work:
        what it would run goes to its inbox and waits there for the next replica, as an unfused hop would.
        """
        return self._hosts.get(name)
