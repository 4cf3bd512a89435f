"""`actormesh token --email E`: mint a bearer JWT (HS256, `sub` = the email) with JWT_SECRET, for testing."""

from __future__ import annotations

import argparse
import sys

HELP = "Mint a bearer JWT for testing a gateway with JWT_SECRET set."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--email", required=True, help="the customer the token speaks for")
    parser.add_argument("--ttl", type=float, default=3600.0, help="lifetime in seconds (default 3600)")


def run(args: argparse.Namespace) -> int:
    from actormesh_runtime.gateway.auth import mint_token
    from actormesh_runtime.gateway.models import normalize_email
    from actormesh_runtime.settings import RuntimeSettings

    settings = RuntimeSettings()
    if not settings.jwt_secret:
        print("JWT_SECRET is not set: the gateway is open and needs no token", file=sys.stderr)
        return 2
    try:
        email = normalize_email(args.email)
    except ValueError:
        print(f"--email: {args.email!r} is not a valid email address", file=sys.stderr)
        return 2
    print(mint_token(settings.jwt_secret, email, ttl_s=args.ttl))
    return 0
