"""`settings_from(args, OPTIONS)`: the process's `RuntimeSettings`, environment first, then the command
line options that were given. Every subcommand that takes `--nats-url`, `--mesh`, ... builds its
settings this way, so an option overrides its environment variable the same way everywhere.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actormesh_runtime.settings import RuntimeSettings

BUS_OPTIONS: dict[str, str] = {"nats_url": "nats_url", "mesh": "mesh_name"}
"""argparse dest -> settings field, for the options every bus client has."""


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
