"""The README's configuration tables name every setting either process reads, and nothing else, with
the defaults the settings objects really have."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

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


def test_each_guide_name_is_on_the_row_of_the_setting_it_sets() -> None:
    rows = [line.split("|")[1] for line in README.read_text().splitlines() if line.startswith("| `")]
    unpaired = {
        guide: ours
        for guide, ours in GUIDE_ALIASES.items()
        if not any(f"`{guide}`" in row and f"`{ours}`" in row for row in rows)
    }
    assert not unpaired, f"README.md: write `OURS` (guide: `GUIDE`) on one row: {unpaired}"


def test_readme_documents_no_setting_that_does_not_exist() -> None:
    guide = set(GUIDE_ALIASES) | set(GUIDE_WITHOUT_EFFECT)
    known = _variables(RuntimeSettings) | _variables(OperatorSettings) | guide | {"KUBECONFIG"}
    stale = _documented() - known
    assert not stale, f"README.md documents settings that no longer exist: {sorted(stale)}"


def _documented_defaults() -> dict[str, str]:
    """Variable → its Default cell, for rows whose default is one literal in backticks."""
    defaults: dict[str, str] = {}
    for line in README.read_text().splitlines():
        cells = [cell.strip() for cell in line.split("|")[1:-1]] if line.startswith("| `") else []
        literal = re.fullmatch(r"`([^`]*)`", cells[1]) if len(cells) >= 3 else None
        if literal is not None:
            for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0].split("(")[0]):
                defaults[name] = literal.group(1)
    return defaults


def _as_written(value: Any) -> Any:
    """A default as the README writes it: JSON for numbers, booleans and lists; enums by value."""
    return getattr(value, "value", value)


@pytest.mark.parametrize("settings", [RuntimeSettings, OperatorSettings], ids=["runtime", "operator"])
def test_the_readme_gives_the_real_defaults(settings: type[BaseSettings]) -> None:
    prefix = str(settings.model_config.get("env_prefix", "")).upper()
    documented = _documented_defaults()
    wrong = {}
    for name, field in settings.model_fields.items():
        written = documented.get(prefix + name.upper())
        default = _as_written(field.get_default(call_default_factory=True))
        if written is None or default is None:
            continue  # "unset", "random", or a value derived when unset (said in words)
        try:
            parsed = json.loads(written)
        except ValueError:
            parsed = written
        if parsed != default:
            wrong[prefix + name.upper()] = (written, default)
    assert len(documented) > 20, "the scan found no defaults: the pattern is broken"
    assert not wrong, f"README.md default ≠ the settings' default (README, code): {wrong}"
