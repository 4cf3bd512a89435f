"""The README's configuration tables name every setting either process reads, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from actormesh_operator.settings import OperatorSettings
from actormesh_runtime.settings import GUIDE_ALIASES, GUIDE_WITHOUT_EFFECT, RuntimeSettings

README = Path(__file__).resolve().parents[2] / "README.md"


def _documented() -> set[str]:
    names: set[str] = set()
    for line in README.read_text().splitlines():
        cell = line.split("|")[1] if line.startswith("|") else ""
        names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", cell))
    return names


def _variables(settings: type[BaseSettings]) -> set[str]:
    prefix = str(settings.model_config.get("env_prefix", "")).upper()
    return {prefix + name.upper() for name in settings.model_fields}


@pytest.mark.parametrize("settings", [RuntimeSettings, OperatorSettings], ids=["runtime", "operator"])
def test_every_setting_is_in_the_readme(settings: type[BaseSettings]) -> None:
    missing = _variables(settings) - _documented()
    assert not missing, f"add these to README.md's configuration table: {sorted(missing)}"


def test_the_guides_names_are_in_the_readme() -> None:
    missing = (set(GUIDE_ALIASES) | set(GUIDE_WITHOUT_EFFECT)) - _documented()
    assert not missing, f"add the seed guide's names to README.md's configuration table: {sorted(missing)}"


def test_readme_documents_no_setting_that_does_not_exist() -> None:
    guide = set(GUIDE_ALIASES) | set(GUIDE_WITHOUT_EFFECT)
    known = _variables(RuntimeSettings) | _variables(OperatorSettings) | guide | {"KUBECONFIG"}
    stale = _documented() - known
    assert not stale, f"README.md documents settings that no longer exist: {sorted(stale)}"
