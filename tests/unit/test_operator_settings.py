"""OperatorSettings: defaults, environment overrides, and a description for every field."""

from __future__ import annotations

import pytest

from actormesh_operator.settings import OperatorSettings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OperatorSettings.model_fields:
        monkeypatch.delenv(f"ACTORMESH_OPERATOR_{name.upper()}", raising=False)
    settings = OperatorSettings()
    assert settings.namespace is None
    assert settings.field_manager == "actormesh-operator"
    assert settings.nats_image.startswith("nats:2.")
    assert settings.redis_image.startswith("redis:7.")
    assert settings.cluster_domain == "cluster.local"
    assert settings.log_format == "json"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORMESH_OPERATOR_NAMESPACE", "shop")
    monkeypatch.setenv("ACTORMESH_OPERATOR_RETRY_LIMIT", "3")
    monkeypatch.setenv("ACTORMESH_OPERATOR_LOG_FORMAT", "text")
    settings = OperatorSettings()
    assert (settings.namespace, settings.retry_limit, settings.log_format) == ("shop", 3, "text")


def test_invalid_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORMESH_OPERATOR_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        OperatorSettings()


@pytest.mark.parametrize("name", sorted(OperatorSettings.model_fields))
def test_every_field_is_described(name: str) -> None:
    description = OperatorSettings.model_fields[name].description
    assert description
    assert len(description) > 20
