"""Command-line options override their environment variables the same way in every subcommand."""

from __future__ import annotations

import argparse

import pytest

from actormesh_runtime.cli import COMMANDS, _load
from actormesh_runtime.commands.options import BUS_OPTIONS, settings_from


def test_given_options_win_and_missing_ones_keep_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESH_NAME", "from-env")
    monkeypatch.setenv("NATS_URL", "nats://env:4222")
    monkeypatch.setenv("ACTOR_HTTP_PORT", "9100")
    args = argparse.Namespace(nats_url="nats://cli:4222", mesh=None, http_port=None)

    settings = settings_from(args, {**BUS_OPTIONS, "http_port": "actor_http_port"}, log_format="json")

    assert settings.nats_url == "nats://cli:4222"
    assert settings.mesh_name == "from-env"
    assert settings.actor_http_port == 9100
    assert settings.log_format == "json"


def test_an_empty_option_does_not_blank_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_URL", "nats://env:4222")
    settings = settings_from(argparse.Namespace(nats_url="", mesh=None), BUS_OPTIONS)
    assert settings.nats_url == "nats://env:4222"


@pytest.mark.parametrize("command", ["actor", "ask", "dlq", "gateway", "history", "dev"])
def test_every_bus_command_accepts_the_bus_options(command: str) -> None:
    parser = argparse.ArgumentParser()
    _load(command).add_arguments(parser)
    dests = {action.dest for action in parser._actions}
    assert set(BUS_OPTIONS) <= dests, f"actormesh {command}: {COMMANDS[command][1]}"
