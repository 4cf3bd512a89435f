"""`configure_logging(settings)`: JSON lines (LOG_FORMAT=json, what the operator sets in containers)
or readable text (the local default). Called once by every CLI command before anything logs.

Structured fields go through `extra=`: `log.info("forwarded", extra={"message_id": ..., "actor": ...})`
becomes keys of the JSON object, or `key=value` pairs in text mode. Lines logged inside a span (a
gateway request, an actor's hop) also get `trace_id` and `span_id` (`observability.tracing`).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from actormesh_runtime.observability.emails import scrubbed
from actormesh_runtime.observability.tracing import TraceLogFilter
from actormesh_runtime.settings import RuntimeSettings

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}

# Libraries that are chatty at INFO (or, aiosqlite, at DEBUG) without telling an operator anything
# useful. aiosqlite logs every statement with its parameters: each stored turn's text, every escalation
# summary, for every conversation; LOG_LEVEL=debug is for following the mesh's own steps.
_QUIET = ("nats", "httpx", "httpcore", "uvicorn.access", "asyncio", "LiteLLM", "litellm", "aiosqlite")


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}


def _scrub(value: Any) -> Any:
    """`value` with card numbers and SSNs redacted and emails pseudonymised in every string inside it
    (before JSON escaping, which would turn an invisible separator into text the redaction cannot see
    through)."""
    if isinstance(value, str):
        return scrubbed(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return scrubbed(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per line. Every string is redacted: whatever a library or an exception quotes
    (an upstream API's error body, a customer's text), no card number, SSN or email address reaches a
    log line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update(_extras(record))
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(_scrub(data))


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal, redacted like the JSON ones."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = _extras(record)
        if extras:
            # Scrubbed before formatting: a dict's repr would escape an invisible separator into text.
            text += " " + " ".join(f"{k}={_scrub(v)}" for k, v in extras.items())
        return scrubbed(text)


def configure_logging(settings: RuntimeSettings, *, level: str | None = None) -> None:
    """Replace the root handlers with one stderr handler in the configured format. Idempotent."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    handler.addFilter(TraceLogFilter())  # trace_id/span_id on every line logged inside a span
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel((level or settings.log_level).upper())
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    for line in settings.startup_warnings():
        logging.getLogger("actormesh_runtime.settings").warning(line)
