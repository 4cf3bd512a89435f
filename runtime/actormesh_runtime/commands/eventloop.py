"""Which event loop a long-running command runs on: uvloop where installed, unless EVENT_LOOP says.

uvloop (libuv) makes the loop and socket layer cheaper for every process alike: the bench measured
+3-10 % throughput for the mesh and for the bare relay (docs/benchmarks.md). It ships with
`uvicorn[standard]`, so the runtime image has it; without it the standard asyncio loop runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from actormesh_runtime.settings import EventLoopChoice

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], choice: EventLoopChoice = "auto") -> T:
    """`asyncio.run(main)` on the chosen loop; "auto" = uvloop if it can be imported, else asyncio."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                main.close()
                raise
        else:
            return uvloop.run(main)
    return asyncio.run(main)


def loop_name() -> str:
    """The running loop's kind, for logs and benchmark reports."""
    loop = asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
