"""Keeping the garbage collector's full passes short in the long-running processes.

CPython's full collection walks every object the collector tracks. After start-up a process holds a
few hundred thousand of them (modules, pydantic's schemas, the NATS client, VADER's lexicon, FastAPI's
routes) that live as long as it does, and each full pass walks them all again while the event loop
waits: 12-120 ms per pass in the bench's actor processes (most 13-35 ms), several passes in each
process's first few hundred messages, every one stalling the message in hand. At one conversation in
flight the p99 was 30-38 ms against a p50 of 8-9 (docs/benchmarks.md, "The collector's stalls").

So each command, once started and before it takes work, collects once and then freezes what survived
(`gc.freeze()`): those objects move to a permanent generation the collector no longer walks. Objects
made later are collected as before. The cost: a reference cycle among frozen objects that becomes
garbage later is never freed; collecting first keeps start-up's own garbage out of that.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


def freeze_after_start(component: str) -> int:
    """Collect, then freeze every surviving object (see the module docstring); returns how many are
    frozen in all. Call it once the process has started and before it serves."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info(
        "start-up heap frozen",
        extra={
            "component": component,
            "objects": frozen,
            "ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
    return frozen
