"""Keeps nats-py from importing aiohttp in processes that never use it.

nats-py imports aiohttp when `nats.aio.transport` loads, for its WebSocket transport only; we connect
over TCP, and aiohttp was ~30 % of an actor's import time and a share of its RSS. `defer_aiohttp()`
(called when `actormesh_runtime` is imported) makes that one import hand nats-py a stand-in module
that imports the real aiohttp on first attribute use, so a `ws://` NATS_URL still works. Anyone
else importing aiohttp gets the real module: the stand-in is never left in `sys.modules`.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

NATS_TRANSPORT = "nats.aio.transport"


class _Deferred(ModuleType):
    """Stands in for a module; the first attribute read imports the real one and reads from it."""

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module(self.__name__), name)


class _NatsTransportFinder(importlib.abc.MetaPathFinder):
    """Finds `nats.aio.transport` as usual, but runs it with the stand-in aiohttp in place."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != NATS_TRANSPORT:
            return None
        sys.meta_path.remove(self)  # one module, once
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or "aiohttp" in sys.modules:
            return spec
        loader = spec.loader
        real_exec = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            stand_in = _Deferred("aiohttp")
            sys.modules["aiohttp"] = stand_in
            try:
                real_exec(module)
            finally:
                if sys.modules.get("aiohttp") is stand_in:
                    del sys.modules["aiohttp"]

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def defer_aiohttp() -> None:
    """Install the finder, unless nats-py's transport is already loaded (then it is too late)."""
    if NATS_TRANSPORT in sys.modules or any(isinstance(f, _NatsTransportFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _NatsTransportFinder())
