"""`actormesh` command line: dispatches to one module per subcommand in `actormesh_runtime.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

# name -> (module, one-line help). The help is here, not in the module, so `--help` imports nothing.
COMMANDS: dict[str, tuple[str, str]] = {
    "dev": ("dev", "Run the whole mesh locally on embedded defaults and print the chat URL."),
    "ask": ("ask", "Send one message through a (local or running) mesh and print the result."),
    "actor": ("actor", "Run one actor (what each actor Deployment runs)."),
    "gateway": ("gateway", "Run the HTTP/WebSocket gateway."),
    "history": ("history", "Run the conversation-history service (the single SQLite writer)."),
    "mocks": ("mocks", "Run the mock customer, orders and tracking APIs."),
    "dlq": ("dlq", "List or replay dead-lettered envelopes."),
    "chat": ("chat", "Send a message to a running gateway over HTTP."),
    "token": (
        "token",
        "Mint a customer's bearer JWT with JWT_SECRET (and explain how a storefront does it).",
    ),
}


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"actormesh_runtime.commands.{COMMANDS[name][0]}")


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="actormesh", description="ActorMesh runtime")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not args_list or args_list[0] in {"-h", "--help"} or args_list[0] not in COMMANDS:
        parser.print_help(sys.stderr if args_list else sys.stdout)
        return 0 if args_list[:1] in (["-h"], ["--help"]) else 2

    name = args_list[0]
    module = _load(name)
    command_parser = argparse.ArgumentParser(prog=f"actormesh {name}", description=COMMANDS[name][1])
    module.add_arguments(command_parser)
    args = command_parser.parse_args(args_list[1:])
    try:
        result: int = module.run(args)
    except Exception as exc:
        from pydantic import ValidationError

        if not isinstance(exc, ValidationError) or exc.title != "RuntimeSettings":
            raise
        print(f"actormesh {name}: invalid configuration: {describe_settings_error(exc)}", file=sys.stderr)
        return 2
    return result


def describe_settings_error(exc: ValidationError) -> str:
    """Each bad setting by its environment variable, and what is wrong — never its value (a key or a
    password would otherwise land on the terminal and in pod logs)."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ", ".join(str(p).upper() for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


if __name__ == "__main__":
    raise SystemExit(main())
