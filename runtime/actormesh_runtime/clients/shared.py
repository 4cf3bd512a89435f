"""Reference-counted per-process resources kept in `ActorDeps.extras`.

Several actors may run in one process (the local mesh); each calls `acquire` in `start()` and
`release` in `stop()`, so they share one connection pool and the last one out closes it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from actormesh_runtime.actors.base import ActorDeps

_T = TypeVar("_T")


@dataclass
class _Entry:
    resource: Any
    close: Callable[[], Awaitable[None]]
    users: int = 0


def acquire(
    deps: ActorDeps, key: str, factory: Callable[[], _T], close: Callable[[_T], Awaitable[None]]
) -> _T:
    """The resource stored under `key`, created by `factory` on first use."""
    entry = deps.extras.get(key)
    if not isinstance(entry, _Entry):
        resource = factory()
        entry = _Entry(resource, lambda: close(resource))
        deps.extras[key] = entry
    entry.users += 1
    result: _T = entry.resource
    return result


async def release(deps: ActorDeps, key: str) -> None:
    """Drop one user of `key`; the last one closes the resource."""
    entry = deps.extras.get(key)
    if not isinstance(entry, _Entry):
        return
    entry.users -= 1
    if entry.users <= 0:
        del deps.extras[key]
        await entry.close()
