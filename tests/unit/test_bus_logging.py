"""Log formats: JSON lines with structured extras, or readable text."""

from __future__ import annotations

import json
import logging

from actormesh_runtime.observability.logging import JsonFormatter, TextFormatter


def _record(extra: dict[str, object]) -> logging.LogRecord:
    record = logging.LogRecord(
        "actormesh.test", logging.WARNING, __file__, 1, "dead-lettered %s", ("x",), None
    )
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_extras() -> None:
    line = JsonFormatter().format(_record({"message_id": "msg-1", "actor": "intent_analyzer"}))

    data = json.loads(line)
    assert data["msg"] == "dead-lettered x"
    assert data["level"] == "warning"
    assert data["logger"] == "actormesh.test"
    assert data["message_id"] == "msg-1"
    assert data["actor"] == "intent_analyzer"
    assert data["ts"].endswith("+00:00")


def test_text_is_readable_with_key_values() -> None:
    line = TextFormatter().format(_record({"actor": "intent_analyzer"}))

    assert "WARNING" in line
    assert line.endswith("dead-lettered x actor=intent_analyzer")
