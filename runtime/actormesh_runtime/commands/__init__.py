"""One module per `actormesh` subcommand.

Each module defines `HELP: str`, `add_arguments(parser: argparse.ArgumentParser) -> None` and
`run(args: argparse.Namespace) -> int`. Modules are imported only when their command runs, so
`actormesh actor sentiment_analyzer` never pays for the gateway's or litellm's imports.
"""
