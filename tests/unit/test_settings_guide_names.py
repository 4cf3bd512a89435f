"""The seed deployment guide's variable names: aliases of ours, with one start-up warning each."""

from __future__ import annotations

import logging

import pytest

from actormesh_runtime.observability.logging import configure_logging
from actormesh_runtime.settings import GUIDE_ALIASES, GUIDE_WITHOUT_EFFECT, RuntimeSettings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*GUIDE_ALIASES, *GUIDE_ALIASES.values(), *GUIDE_WITHOUT_EFFECT]:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("guide", "value", "field", "expected"),
    [
        pytest.param("RESPONSE_TEMPERATURE", "0.9", "llm_temperature", 0.9, id="RESPONSE_TEMPERATURE"),
        pytest.param("INTENT_TIMEOUT", "30", "llm_timeout_s", 30.0, id="INTENT_TIMEOUT"),
        pytest.param("REQUEST_TIMEOUT", "60", "request_timeout_s", 60.0, id="REQUEST_TIMEOUT"),
        pytest.param("ACTOR_POOL_SIZE", "5", "actor_concurrency", 5, id="ACTOR_POOL_SIZE"),
    ],
)
def test_a_guide_name_sets_our_setting_and_warns_naming_ours(
    monkeypatch: pytest.MonkeyPatch, guide: str, value: str, field: str, expected: object
) -> None:
    monkeypatch.setenv(guide, value)
    settings = RuntimeSettings()
    assert getattr(settings, field) == expected
    assert settings.startup_warnings() == [
        f"{guide} is deprecated: rename it to {GUIDE_ALIASES[guide]} (its value is used)"
    ]


def test_the_alias_table_is_tested_whole() -> None:
    assert set(GUIDE_ALIASES) == {
        "RESPONSE_TEMPERATURE",
        "INTENT_TIMEOUT",
        "REQUEST_TIMEOUT",
        "ACTOR_POOL_SIZE",
    }


def test_our_name_wins_and_the_guide_name_is_reported_as_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUEST_TIMEOUT", "60")
    monkeypatch.setenv("REQUEST_TIMEOUT_S", "40")
    settings = RuntimeSettings()
    assert settings.request_timeout_s == 40.0
    assert settings.startup_warnings() == [
        "REQUEST_TIMEOUT ignored: REQUEST_TIMEOUT_S is set (rename REQUEST_TIMEOUT to REQUEST_TIMEOUT_S)"
    ]


def test_a_guide_name_without_effect_is_not_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USE_LLM_VALIDATION", "true")
    (line,) = RuntimeSettings().startup_warnings()
    assert line.startswith("USE_LLM_VALIDATION has no effect: guardrail_validator is rules-only")


def test_no_guide_names_no_warnings_and_keyword_arguments_still_work() -> None:
    settings = RuntimeSettings(llm_temperature=0.1, actor_concurrency=3, request_timeout_s=9)
    assert (settings.llm_temperature, settings.actor_concurrency, settings.request_timeout_s) == (0.1, 3, 9.0)
    assert settings.startup_warnings() == []


def test_start_up_logs_one_warning_line_per_guide_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ACTOR_POOL_SIZE", "5")
    monkeypatch.setenv("USE_LLM_VALIDATION", "true")
    settings = RuntimeSettings(log_format="text")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        configure_logging(settings)  # its handler writes to the sys.stderr capsys installed
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(
        "ACTOR_POOL_SIZE is deprecated: rename it to ACTOR_CONCURRENCY (its value is used)"
    )
    assert "USE_LLM_VALIDATION has no effect" in lines[1]
