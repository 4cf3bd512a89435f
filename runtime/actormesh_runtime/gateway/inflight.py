"""`InFlight`: counts chats in flight per key (a customer's email) on one gateway replica, with a cap.

WebSocket chats run concurrently and each may cost an LLM call; a per-socket cap alone is beaten by
opening more sockets, so the WebSocket route also takes a slot per customer here. The counter is
process-local on purpose: a limit on work this replica is doing needs no shared store, and it can never
leak (slots are released when the chat's task ends, however it ends).
"""

from __future__ import annotations

from dataclasses import dataclass, field


class LimitReached(Exception):
    """The key already has `limit` chats in flight."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"limit {limit} reached")
        self.limit = limit


@dataclass
class Slot:
    owner: InFlight
    key: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.owner._release(self.key)


@dataclass
class InFlight:
    limit: int
    counts: dict[str, int] = field(default_factory=dict)

    def acquire(self, key: str) -> Slot:
        if self.counts.get(key, 0) >= self.limit:
            raise LimitReached(self.limit)
        self.counts[key] = self.counts.get(key, 0) + 1
        return Slot(self, key)

    def _release(self, key: str) -> None:
        left = self.counts.get(key, 0) - 1
        if left > 0:
            self.counts[key] = left
        else:
            self.counts.pop(key, None)  # no entry per customer ever seen: the map stays small
