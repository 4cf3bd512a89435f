"""Give the memory of a finished burst back to the system.

Called by `state.OperatorState` whenever the wake-up queue runs empty. A burst of reconciles (50 meshes
created at once) parses and builds tens of megabytes of short-lived objects; Python frees them, but
glibc keeps the freed pages in its heap, so the process's RSS stayed at the burst's peak for good.
`malloc_trim(0)` returns them (measured with `make bench-operator`: docs/benchmarks.md). Where the C
library has no `malloc_trim` (musl), this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

MIN_INTERVAL_S = 30.0
"""At most one trim this often: a full collection plus a trim costs tens of milliseconds at 100 meshes."""


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


class HeapTrimmer:
    def __init__(self, min_interval_s: float = MIN_INTERVAL_S) -> None:
        self._trim = _malloc_trim()
        self._min_interval_s = min_interval_s
        self._last = -min_interval_s

    def idle(self) -> bool:
        """The burst is over: collect cycles and trim the C heap (rate-limited). True if it trimmed."""
        now = time.monotonic()
        if self._trim is None or now - self._last < self._min_interval_s:
            return False
        self._last = now
        gc.collect()
        self._trim(0)
        return True
