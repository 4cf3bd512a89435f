"""`actormesh chat --email E "text"`: a small HTTP client of a running gateway (`actormesh dev` or a cluster).

Prints the agent's reply and what the mesh did (as `actormesh ask` does), or exactly the result JSON
with `--json`. With JWT_SECRET in the environment and no `--token`, it mints a token for the email.
Exit status: 0 answered, 1 refused or failed, 2 usage (also a `--url` that is not a URL), 3 timed out
(the message id is printed: fetch it later with `--result ID`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

HELP = "Send a message to a running gateway over HTTP."
EXIT_TIMEOUT = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("message", nargs="?", help="the customer's message")
    parser.add_argument("--email", help="customer email, e.g. john.doe@example.com")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="gateway base URL")
    parser.add_argument("--session", help="session id, to continue a conversation")
    parser.add_argument("--token", help="bearer token (default: minted from $JWT_SECRET when set)")
    parser.add_argument("--result", metavar="MESSAGE_ID", help="fetch the result of an earlier message")
    parser.add_argument("--json", action="store_true", help="print exactly the result JSON")
    parser.add_argument("--timeout", type=float, default=120.0, help="HTTP timeout in seconds")


def bearer_headers(token: str | None, email: str | None, *, role: str | None = None) -> dict[str, str]:
    """`Authorization` with `token`; without one, with a token minted from $JWT_SECRET for `email`
    (and `role`) when both are set; else no header (a gateway without JWT_SECRET needs none)."""
    if token is None and email:
        from actormesh_runtime.gateway.auth import mint_token
        from actormesh_runtime.settings import RuntimeSettings

        settings = RuntimeSettings()
        if settings.jwt_secret:
            token = mint_token(
                settings.jwt_secret,
                email,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                role=role,
            )
    return {"Authorization": f"Bearer {token}"} if token else {}


def _fail(status: int, body: Any) -> int:
    detail = body.get("detail") if isinstance(body, dict) else body
    print(f"error {status}: {detail}", file=sys.stderr)
    if status == 504 and isinstance(body, dict):
        print(f"message id: {body.get('message_id')} (fetch it later with --result ID)", file=sys.stderr)
        return EXIT_TIMEOUT
    return 1


def run(args: argparse.Namespace) -> int:
    import httpx

    from actormesh_runtime.commands.ask import render
    from actormesh_runtime.envelope import FinalResult

    if args.result is None and (not args.message or not args.email):
        print("usage: actormesh chat --email EMAIL MESSAGE  (or --result MESSAGE_ID)", file=sys.stderr)
        return 2
    base = args.url.rstrip("/")
    try:
        with httpx.Client(timeout=args.timeout, headers=bearer_headers(args.token, args.email)) as client:
            if args.result:
                response = client.get(f"{base}/api/messages/{args.result}")
            else:
                payload = {"message": args.message, "customer_email": args.email, "session_id": args.session}
                response = client.post(f"{base}/api/chat", json=payload)
    except httpx.InvalidURL as exc:  # not an HTTPError: it would otherwise end in a traceback
        print(f"actormesh chat: --url {args.url} is not a valid URL: {exc}", file=sys.stderr)
        return 2
    except httpx.HTTPError as exc:
        print(f"cannot reach the gateway at {base}: {exc}", file=sys.stderr)
        return 1
    try:
        body = response.json()
    except json.JSONDecodeError:
        body = response.text
    if response.status_code != 200:
        return _fail(response.status_code, body)
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        print(render(FinalResult.model_validate(body)))
        print(f"  session    {body.get('session_id')}")
    return 0
