"""How urgent a person's attention is: one scale for escalations and approval requests alike."""

from __future__ import annotations

from actormesh_runtime.wire_enum import WireEnum


class Priority(WireEnum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 = most urgent; queues sort on it."""
        return PRIORITY_ORDER.index(self)


PRIORITY_ORDER: tuple[Priority, ...] = (Priority.URGENT, Priority.HIGH, Priority.NORMAL, Priority.LOW)
