"""The options bus clients share, and `settings_from(args, OPTIONS)`: the process's `RuntimeSettings`,
environment first, then the command line options that were given.

Every subcommand that talks to the bus declares `--nats-url` and `--mesh` with `add_bus_options` and
builds its settings with `settings_from`, so an option overrides its environment variable the same
way everywhere. The commands a person runs as the NATS `admin` user (`dlq`, `erase`) use
`add_admin_options` and `admin_settings_from` instead: the same, and they also find a running
`actormesh dev` (`local.dev_handle`). Shared options are accepted on either side of a subcommand:
`actormesh --mesh demo dlq list`, `actormesh dlq --mesh demo list` and `actormesh dlq list --mesh demo`
mean the same (`cli.py` moves them after the command name; `add_subcommands` accepts them after a
subcommand).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actormesh_runtime.settings import RuntimeSettings

BUS_OPTIONS: dict[str, str] = {"nats_url": "nats_url", "mesh": "mesh_name"}
"""argparse dest -> settings field, for the options every bus client has."""
SHARED_FLAGS: frozenset[str] = frozenset({"--nats-url", "--mesh", "--dev-dir"})
"""The options (each takes a value) `actormesh` also accepts before the command name (a command
without one rejects it, naming it)."""
NATS_HELP = "NATS server(s), comma-separated (default: $NATS_URL)"
MESH_HELP = "mesh name (default: $MESH_NAME or 'local')"
DEV_DIR_HELP = (
    "reach the `actormesh dev` running with this --data-dir, as the NATS admin user (default, when no "
    "NATS server is named: the one running in ./.actormesh, if any)"
)
NAMED_NATS: frozenset[str] = frozenset({"nats_url", "nats_user", "nats_token"})
"""Settings that name a NATS server or who to be on it: given any, a CLI never looks for a dev mesh."""


def add_bus_options(parser: argparse.ArgumentParser, *, nats_help: str = NATS_HELP) -> None:
    """`--nats-url` and `--mesh`; `nats_help` where the command gives `--nats-url` a special meaning."""
    parser.add_argument("--nats-url", help=nats_help)
    parser.add_argument("--mesh", help=MESH_HELP)


def add_admin_options(parser: argparse.ArgumentParser) -> None:
    """`add_bus_options` and `--dev-dir`, for the commands a person runs as the NATS `admin` user."""
    add_bus_options(parser)
    parser.add_argument("--dev-dir", type=Path, metavar="DATA_DIR", help=DEV_DIR_HELP)


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


def print_unreachable(args: argparse.Namespace, settings: RuntimeSettings, error: Exception) -> None:
    """The "cannot reach NATS" error of an admin command, on stderr; when nothing named a server (no
    `--dev-dir`, no dev mesh in ./.actormesh, no `--nats-url`, NATS_URL, NATS_USER or NATS_TOKEN),
    the default one was tried, and the likeliest intent was an `actormesh dev` running elsewhere."""
    print(f"error: {error}", file=sys.stderr)
    if getattr(args, "dev_dir", None) is None and not settings.model_fields_set & NAMED_NATS:
        print(
            "hint: no `actormesh dev` runs from this directory (./.actormesh); for one started "
            "elsewhere pass --dev-dir DATA_DIR (its --data-dir), for another server --nats-url",
            file=sys.stderr,
        )


def admin_settings_from(args: argparse.Namespace, options: dict[str, str]) -> RuntimeSettings:
    """`settings_from`, pointed at a running `actormesh dev` as its `admin` user: the one `--dev-dir`
    names (`local.dev_handle.NoDevMesh` if none runs there), else, when nothing names a NATS server
    (no `--nats-url`, NATS_URL, NATS_USER or NATS_TOKEN), the one running in ./.actormesh if any, as
    `actormesh chat` finds `actormesh dev` on its default port. Its mesh name too, unless `--mesh` or
    MESH_NAME names one. NATS_TLS_* are dropped for it (the dev server has no TLS). Reads a small
    file: call it before the event loop starts."""
    from actormesh_runtime.local.dev_handle import DEFAULT_DATA_DIR, NoDevMesh, handle_path, read_handle

    settings = settings_from(args, options)
    dev_dir: Path | None = getattr(args, "dev_dir", None)
    if dev_dir is None:
        handle = None if settings.model_fields_set & NAMED_NATS else read_handle(DEFAULT_DATA_DIR)
        if handle is None:
            return settings
    else:
        if getattr(args, "nats_url", None):
            raise NoDevMesh("--dev-dir and --nats-url each name a NATS server: give one")
        handle = read_handle(dev_dir)
        if handle is None:
            raise NoDevMesh(f"no `actormesh dev --data-dir {dev_dir}` is running ({handle_path(dev_dir)})")
    update: dict[str, Any] = {
        "nats_url": handle.nats_url,
        "nats_user": handle.nats_user,
        "nats_password": handle.nats_password,
        "nats_token": None,
        # The dev mesh's embedded nats-server speaks no TLS: NATS_TLS_* meant for another server
        # would make the connection try TLS against it and fail.
        "nats_tls_ca": None,
        "nats_tls_cert": None,
        "nats_tls_key": None,
    }
    if "mesh_name" not in settings.model_fields_set:
        update["mesh_name"] = handle.mesh_name
    return settings.model_copy(update=update)
