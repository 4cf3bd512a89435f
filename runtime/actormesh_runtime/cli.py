"""`actormesh` command line: dispatches to one module per subcommand in `actormesh_runtime.commands`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

from actormesh_runtime.commands.options import leading_shared_options

# name -> (module, one-line help). The help is here, not in the module, so `--help` imports nothing.
COMMANDS: dict[str, tuple[str, str]] = {
    "dev": ("dev", "Run the whole mesh locally on embedded defaults and print the chat URL."),
    "ask": ("ask", "Send one message through a (local or running) mesh and print the result."),
    "actor": ("actor", "Run one actor (what each actor Deployment runs)."),
    "gateway": ("gateway", "Run the HTTP/WebSocket gateway."),
    "history": ("history", "Run the conversation-history service (the single SQLite writer)."),
    "mocks": ("mocks", "Run the mock customer, orders and tracking APIs."),
    "dlq": ("dlq", "List or replay dead-lettered envelopes."),
    "erase": ("erase", "Erase one customer's data (history, dead letters, events, cache) on their request."),
    "chat": ("chat", "Send a message to a running gateway over HTTP."),
    "token": (
        "token",
        "Mint a customer's (or --role agent: a support agent's) bearer JWT with JWT_SECRET.",
    ),
    "escalations": (
        "escalations",
        "List, show, claim, reply to and resolve escalations on a running gateway.",
    ),
}


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"actormesh_runtime.commands.{COMMANDS[name][0]}")


def parse(argv: list[str]) -> tuple[ModuleType, argparse.Namespace] | int:
    """The command's module and its parsed arguments, or an exit code after printing the help.

    Shared options (`--nats-url`, `--mesh`, `--dev-dir`) may come before the command name too; they
    are handed to the command as if given right after it (a command without them rejects them,
    naming them).
    """
    leading, rest = leading_shared_options(argv)
    parser = argparse.ArgumentParser(prog="actormesh", description="ActorMesh runtime")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not rest or rest[0] in {"-h", "--help"} or rest[0] not in COMMANDS:
        parser.print_help(sys.stderr if rest else sys.stdout)
        return 0 if rest[:1] in (["-h"], ["--help"]) else 2

    name = rest[0]
    module = _load(name)
    command_parser = argparse.ArgumentParser(prog=f"actormesh {name}", description=COMMANDS[name][1])
    module.add_arguments(command_parser)
    return module, command_parser.parse_args([*leading, *rest[1:]])


def main(argv: list[str] | None = None) -> int:
    parsed = parse(sys.argv[1:] if argv is None else argv)
    if isinstance(parsed, int):
        return parsed
    module, args = parsed
    try:
        result: int = module.run(args)
    except Exception as exc:
        from pydantic import ValidationError

        name = module.__name__.rsplit(".", 1)[-1]
        if isinstance(exc, ValidationError) and exc.title == "RuntimeSettings":
            print(f"actormesh {name}: invalid configuration: {describe_settings_error(exc)}", file=sys.stderr)
            return 2
        # Through the handler the command configured, not the interpreter's traceback printer: with
        # LOG_FORMAT=json a pod's last words are one JSON line (traceback in `exc`), which a log
        # pipeline would otherwise split into dozens of unparseable lines.
        logging.getLogger("actormesh_runtime.cli").critical(f"actormesh {name} failed: {exc!r}", exc_info=exc)
        return 1
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
