"""The runtime's layers contract names every top-level runtime module, so none escapes the check.

`lint-imports` (in `make lint`) enforces the contract; a module missing from it would be free to
import anything, which is how upward imports crept in before.
"""

from __future__ import annotations

import configparser
import pkgutil
import re
from pathlib import Path

import actormesh_runtime

ROOT = Path(__file__).resolve().parents[2]


def runtime_layers() -> list[list[str]]:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    raw = config["importlinter:contract:runtime-layers"]["layers"]
    return [re.split(r"\s*[|:]\s*", line.strip()) for line in raw.strip().splitlines() if line.strip()]


def test_every_runtime_module_has_a_floor() -> None:
    listed = [name for layer in runtime_layers() for name in layer]
    assert len(listed) == len(set(listed)), "a module is on two floors"
    modules = {f"actormesh_runtime.{m.name}" for m in pkgutil.iter_modules(actormesh_runtime.__path__)}
    assert set(listed) == modules


def test_the_operator_may_import_only_the_catalog() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    contract = config["importlinter:contract:operator-uses-only-catalog"]
    assert contract["forbidden_modules"].split() == ["actormesh_runtime"]
    assert contract["ignore_imports"].split() == ["actormesh_operator.**", "->", "actormesh_runtime.catalog"]


def test_docs_architecture_draws_the_same_floors() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("## Runtime floors", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    drawn = [
        [name.strip() for name in re.split(r"\s{2,}", line.strip())[0].split("|")]
        for line in block.strip().splitlines()
    ]
    contract = [[m.removeprefix("actormesh_runtime.") for m in layer] for layer in runtime_layers()]
    assert drawn == contract
