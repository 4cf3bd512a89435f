"""The options bus clients share, and `settings_from(args, OPTIONS)`: the process's `RuntimeSettings`,
environment first, then the command line options that were given.

Every subcommand that talks to the bus declares `--nats-url` and `--mesh` with `add_bus_options` and
builds its settings with `settings_from`, so an option overrides its environment variable the same
way everywhere. Shared options are accepted on either side of a subcommand: `actormesh --mesh demo
dlq list`, `actormesh dlq --mesh demo list` and `actormesh dlq list --mesh demo` mean the same
(`cli.py` moves them after the command name; `add_subcommands` accepts them after a subcommand).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actormesh_runtime.settings import RuntimeSettings

BUS_OPTIONS: dict[str, str] = {"nats_url": "nats_url", "mesh": "mesh_name"}
"""argparse dest -> settings field, for the options every bus client has."""
SHARED_FLAGS: frozenset[str] = frozenset({"--nats-url", "--mesh"})
"""The options (each takes a value) `actormesh` also accepts before the command name."""
NATS_HELP = "NATS server(s), comma-separated (default: $NATS_URL)"
MESH_HELP = "mesh name (default: $MESH_NAME or 'local')"


def add_bus_options(parser: argparse.ArgumentParser, *, nats_help: str = NATS_HELP) -> None:
    """`--nats-url` and `--mesh`; `nats_help` where the command gives `--nats-url` a special meaning."""
    parser.add_argument("--nats-url", help=nats_help)
    parser.add_argument("--mesh", help=MESH_HELP)


def add_subcommands(
    parser: argparse.ArgumentParser,
    dest: str,
    shared: Callable[[argparse.ArgumentParser], None],
    **subparsers: Any,
) -> Callable[..., argparse.ArgumentParser]:
    """Subcommands that accept the command's `shared` options after their own name too.

    Returns `add(name, **kwargs)` creating one subcommand parser. A shared option given after the
    subcommand wins over the same option given before it; one given only before it is kept.
    `subparsers` goes to `add_subparsers` (default: a subcommand is required).
    """
    actions = parser.add_subparsers(dest=dest, **{"required": True, **subparsers})
    after = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    shared(after)

    def add(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        created: argparse.ArgumentParser = actions.add_parser(name, parents=[after], **kwargs)
        return created

    return add


def leading_shared_options(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split `--nats-url X --mesh Y COMMAND ...` into (the shared options, `COMMAND ...`)."""
    i = 0
    while i < len(argv) and argv[i].split("=", 1)[0] in SHARED_FLAGS:
        i += 1 if "=" in argv[i] else 2
    return argv[:i], argv[i:]


def settings_from(args: argparse.Namespace, options: dict[str, str], **fixed: Any) -> RuntimeSettings:
    """Settings from the environment, overridden by each option in `options` given on the command
    line (not None, not empty), then by `fixed`."""
    from actormesh_runtime.settings import RuntimeSettings

    overrides: dict[str, Any] = {
        field: getattr(args, dest)
        for dest, field in options.items()
        if getattr(args, dest, None) not in (None, "")
    }
    overrides.update(fixed)
    return RuntimeSettings(**overrides)
