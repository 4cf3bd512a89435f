"""Which id a new record is stored under when ids are short hashes that may collide.

An escalation's ref is derived from its message id, an approval request's id from its action's
idempotency key: 8 hex digits of a hash (`escalations.reference_id`, `approvals.approval_id`), so two
owners may derive the same one. Each owner has an ordered list of candidates (attempt 0, 1, ...); the
record goes to the first candidate that already holds its owner's record (a redelivery, or a record
moved earlier whose first candidate is free again after an erasure or retention: walking the
candidates from the start would file the case twice), else to the first free one. Both stores call
`place` inside their write transaction and log and count a move themselves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

ReadHolders = Callable[[Sequence[str]], Awaitable[dict[str, str | None]]]
"""Each id → the owner of the record stored under it, None when it is free."""


class Placement(NamedTuple):
    id: str
    stored_before: bool
    """Its owner's record is there already (nothing to insert, no collision to report)."""


async def place(
    candidates: Sequence[str],
    owner: str,
    holders: dict[str, str | None],
    read: ReadHolders,
    *,
    own_first: bool = True,
) -> Placement | None:
    """Where `owner`'s record goes among `candidates` (its first is the id the record came with); None
    when another owner holds every one. `holders` (what the batch has read and claimed) is read where
    it lacks a candidate and updated with the choice, so a batch holding both owners of a collision
    places them apart. `own_first=False`: the record came with an id not derived from its owner, so
    only that id and then the free ones are tried, in order."""
    missing = [c for c in candidates if c not in holders]
    if missing:
        holders.update(await read(missing))
    if own_first:
        for candidate in candidates:
            if holders[candidate] == owner:
                return Placement(candidate, stored_before=True)
    for candidate in candidates:
        holder = holders[candidate]
        if holder == owner:
            return Placement(candidate, stored_before=True)
        if holder is None:
            holders[candidate] = owner
            return Placement(candidate, stored_before=False)
    return None
