"""How `actormesh dev`'s banner spells the `actormesh` command (`commands.dev.cli_command`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from actormesh_runtime.commands.dev import cli_command


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "actormesh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    return bin_dir


def test_an_unactivated_venv_is_named_by_its_path_from_the_working_directory(
    venv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert cli_command(str(venv / "python"), cwd=tmp_path) == ".venv/bin/actormesh"


def test_outside_the_working_directory_the_path_is_absolute(
    venv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert cli_command(str(venv / "python"), cwd=elsewhere) == str(venv.resolve() / "actormesh")


def test_the_plain_name_when_path_finds_this_installation(
    venv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(venv))
    assert cli_command(str(venv / "python"), cwd=tmp_path) == "actormesh"


def test_another_installation_on_path_is_not_taken_for_this_one(
    venv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "actormesh").write_text("#!/bin/sh\n")
    (other / "actormesh").chmod(0o755)
    monkeypatch.setenv("PATH", str(other))
    assert cli_command(str(venv / "python"), cwd=tmp_path) == ".venv/bin/actormesh"


def test_without_a_script_beside_the_interpreter_the_plain_name(tmp_path: Path) -> None:
    assert cli_command(str(tmp_path / "python"), cwd=tmp_path) == "actormesh"
