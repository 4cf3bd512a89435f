"""`actormesh chat --email E "text"`: a small HTTP client of a running gateway (`actormesh dev` or a cluster).

Prints the agent's reply and what the mesh did (as `actormesh ask` does), or exactly the result JSON
with `--json`. With JWT_SECRET in the environment and no `--token`, it mints a token for the email.
Exit status: 0 answered, 1 refused or failed, 2 usage (also a `--url` that is not a URL), 3 timed out
(the message id is printed: fetch it later with `--result ID`).

Every message goes with an `Idempotency-Key` (`--key`, else a random one), so a connection that fails
once the request may have been sent (reset, closed, timed out while sending or reading) is retried
under the same key: the gateway answers the first attempt's turn instead of starting a second one.
The key is printed when the command gives up, to send the very same message again later.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

HELP = "Send a message to a running gateway over HTTP."
EXIT_TIMEOUT = 3
ATTEMPTS = 3
"""Tries of one message when the connection fails; safe because they share one Idempotency-Key."""
RETRY_PAUSE_S = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("message", nargs="?", help="the customer's message")
    parser.add_argument("--email", help="customer email, e.g. john.doe@example.com")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="gateway base URL")
    parser.add_argument("--session", help="session id, to continue a conversation")
    parser.add_argument("--token", help="bearer token (default: minted from $JWT_SECRET when set)")
    parser.add_argument("--result", metavar="MESSAGE_ID", help="fetch the result of an earlier message")
    parser.add_argument("--json", action="store_true", help="print exactly the result JSON")
    parser.add_argument("--timeout", type=float, default=120.0, help="HTTP timeout in seconds")
    parser.add_argument(
        "--key",
        help="Idempotency-Key of the message (default: a random one); the same key again gets the same "
        "turn's answer, never a second turn",
    )


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


def _fail(status: int, body: Any, key: str | None) -> int:
    detail = body.get("detail") if isinstance(body, dict) else body
    print(f"error {status}: {detail}", file=sys.stderr)
    if status == 504 and isinstance(body, dict):
        print(f"message id: {body.get('message_id')} (fetch it later with --result ID)", file=sys.stderr)
        if key is not None:
            print(f"or send the same message again with --key {key}", file=sys.stderr)
        return EXIT_TIMEOUT
    return 1


def post_chat(client: httpx.Client, url: str, payload: dict[str, Any], key: str) -> httpx.Response:
    """POST the message, tried again under the same key while the connection fails: one failing after
    the request went out leaves the turn started but unanswered, and the key makes the retry get its
    answer. The last failure is raised."""
    import httpx

    attempt = 1
    while True:
        try:
            return client.post(url, json=payload, headers={"Idempotency-Key": key})
        except httpx.TransportError as exc:
            if attempt == ATTEMPTS or isinstance(exc, httpx.UnsupportedProtocol):
                raise
            print(f"connection failed ({exc or type(exc).__name__}); trying again", file=sys.stderr)
            time.sleep(RETRY_PAUSE_S)
            attempt += 1


def run(args: argparse.Namespace) -> int:
    import httpx

    from actormesh_runtime.commands.ask import render
    from actormesh_runtime.envelope import FinalResult
    from actormesh_runtime.ids import random_hex

    if args.result is None and (not args.message or not args.email):
        print("usage: actormesh chat --email EMAIL MESSAGE  (or --result MESSAGE_ID)", file=sys.stderr)
        return 2
    base = args.url.rstrip("/")
    key = None if args.result else (args.key or f"cli-{random_hex(24)}")
    try:
        with httpx.Client(timeout=args.timeout, headers=bearer_headers(args.token, args.email)) as client:
            if args.result:
                response = client.get(f"{base}/api/messages/{args.result}")
            else:
                payload = {"message": args.message, "customer_email": args.email, "session_id": args.session}
                assert key is not None
                response = post_chat(client, f"{base}/api/chat", payload, key)
    except httpx.InvalidURL as exc:  # not an HTTPError: it would otherwise end in a traceback
        print(f"actormesh chat: --url {args.url} is not a valid URL: {exc}", file=sys.stderr)
        return 2
    except httpx.HTTPError as exc:
        print(f"cannot reach the gateway at {base}: {exc}", file=sys.stderr)
        if key is not None:
            print(f"send the same message again with --key {key}", file=sys.stderr)
        return 1
    try:
        body = response.json()
    except json.JSONDecodeError:
        body = response.text
    if response.status_code != 200:
        return _fail(response.status_code, body, key)
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        print(render(FinalResult.model_validate(body)))
        print(f"  session    {body.get('session_id')}")
    return 0
