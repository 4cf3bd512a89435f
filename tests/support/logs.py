"""Capture every log record any logger emits, as the JSON lines a container would print."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from actormesh_runtime.observability.logging import JsonFormatter
from actormesh_runtime.observability.tracing import TraceLogFilter


@contextmanager
def json_log_capture() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(TraceLogFilter())  # as configure_logging does
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
