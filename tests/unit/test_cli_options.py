"""Command-line options override their environment variables the same way in every subcommand."""

from __future__ import annotations

import argparse

import pytest

from actormesh_runtime.cli import COMMANDS, _load, parse
from actormesh_runtime.commands.options import BUS_OPTIONS, SHARED_FLAGS, print_unreachable, settings_from


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


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["dlq", "list", "--nats-url", "nats://x:4222", "--mesh", "demo"], id="after-subcommand"),
        pytest.param(
            ["dlq", "--nats-url", "nats://x:4222", "--mesh", "demo", "list"], id="before-subcommand"
        ),
        pytest.param(["--nats-url", "nats://x:4222", "--mesh=demo", "dlq", "list"], id="before-command"),
        pytest.param(["--mesh", "demo", "dlq", "list", "--nats-url=nats://x:4222"], id="mixed"),
    ],
)
def test_shared_options_work_on_either_side_of_a_subcommand(argv: list[str]) -> None:
    parsed = parse(argv)
    assert not isinstance(parsed, int)
    _, args = parsed
    assert (args.action, args.nats_url, args.mesh) == ("list", "nats://x:4222", "demo")
    assert settings_from(args, BUS_OPTIONS).nats_url == "nats://x:4222"


def test_an_option_after_the_subcommand_wins_over_one_before_it() -> None:
    parsed = parse(["dlq", "--mesh", "before", "replay", "7", "--mesh", "after"])
    assert not isinstance(parsed, int)
    assert (parsed[1].mesh, parsed[1].id) == ("after", 7)


@pytest.mark.parametrize("command", ["actor", "ask", "dlq", "gateway", "history", "dev"])
def test_every_bus_command_takes_the_shared_options_before_its_name(command: str) -> None:
    required = {"actor": ["sentiment_analyzer"], "ask": ["--email", "a@b.c", "hi"], "dlq": ["list"]}
    parsed = parse(["--nats-url", "nats://x:4222", "--mesh", "demo", command, *required.get(command, [])])
    assert not isinstance(parsed, int)
    assert (parsed[1].nats_url, parsed[1].mesh) == ("nats://x:4222", "demo")


def test_a_command_without_the_shared_options_rejects_them_by_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(["--mesh", "demo", "token", "--email", "a@b.c"])
    assert exc.value.code == 2
    assert "--mesh" in capsys.readouterr().err


def _subcommands(command: str) -> dict[str, argparse.ArgumentParser]:
    parser = argparse.ArgumentParser()
    _load(command).add_arguments(parser)
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


NEEDS = {("dlq", "replay"): ["7"], ("history", "restore"): ["--from", "snap.db"]}
"""What a subcommand needs besides the shared options."""


@pytest.mark.parametrize(
    ("command", "subcommand"), [pytest.param(c, s, id=f"{c}-{s}") for c in COMMANDS for s in _subcommands(c)]
)
def test_every_subcommand_takes_the_shared_options_after_its_name(command: str, subcommand: str) -> None:
    parser = argparse.ArgumentParser()
    _load(command).add_arguments(parser)
    flags = sorted({s for a in parser._actions for s in a.option_strings} & SHARED_FLAGS)
    assert flags, f"actormesh {command} has subcommands but none of the shared options"
    given = [f"{flag}=value" for flag in flags]
    parsed = parse([command, subcommand, *NEEDS.get((command, subcommand), []), *given])
    assert not isinstance(parsed, int)
    assert [str(getattr(parsed[1], flag[2:].replace("-", "_"))) for flag in flags] == ["value"] * len(flags)


@pytest.mark.parametrize(
    ("env", "dev_dir", "hinted"),
    [({}, None, True), ({"NATS_URL": "nats://elsewhere:4222"}, None, False), ({}, "data", False)],
    ids=["nothing named", "NATS_URL named one", "--dev-dir named one"],
)
def test_cannot_reach_hints_at_dev_dir_only_when_nothing_named_a_server(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    dev_dir: str | None,
    hinted: bool,
) -> None:
    for name in ("NATS_URL", "NATS_USER", "NATS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = argparse.Namespace(nats_url=None, mesh=None, dev_dir=dev_dir)
    print_unreachable(args, settings_from(args, BUS_OPTIONS), OSError("cannot reach NATS at nats://x"))
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach NATS at nats://x\n")
    assert ("--dev-dir DATA_DIR" in err) is hinted, err
