"""`actormesh` command line (placeholder until the runtime-core subcommands land)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("actormesh: no subcommands yet", file=sys.stderr)
    return 2
