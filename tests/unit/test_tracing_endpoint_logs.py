"""The OTLP endpoint may carry basic-auth credentials (`http://user:password@collector:4318`: the
exporter sends them); the start-up line that names the endpoint, in every pod's log, must not."""

from __future__ import annotations

import logging

import pytest

from actormesh_runtime.observability import tracing
from actormesh_runtime.settings import RuntimeSettings


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
def test_the_endpoint_is_logged_without_its_password(
    variable: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(variable, "http://tracer:s3cret-pw@collector.observability:4318")
    caplog.set_level(logging.INFO, logger=tracing.__name__)
    try:
        assert tracing.configure_tracing(RuntimeSettings(), service="test")
    finally:
        tracing.shutdown_tracing()
    [started] = [r for r in caplog.records if r.getMessage() == "tracing export on"]
    assert str(started.endpoint).startswith("http://collector.observability:4318")
    assert "s3cret-pw" not in caplog.text
    assert all("s3cret-pw" not in str(vars(r)) for r in caplog.records)
