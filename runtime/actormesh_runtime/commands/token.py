"""`actormesh token --email E [--role agent]`: mint a bearer JWT with JWT_SECRET — what a storefront does
for a customer (or a help desk for a support agent: `--role agent`).

The gateway trusts one thing: an HS256 JWT signed with its key. A storefront (or any backend that has
already signed the customer in) mints one per customer session and hands it to the browser, which
sends it as `Authorization: Bearer <jwt>` or, on the WebSocket, as the subprotocol
`actormesh.bearer.<jwt>`. This command mints exactly such a token; its `--help` says how to do it in
any language.
"""

from __future__ import annotations

import argparse
import sys

HELP = "Mint a customer's (or --role agent: a support agent's) bearer JWT with JWT_SECRET."

STOREFRONT_HOWTO = """\
How a storefront mints customer tokens (any JWT library, e.g. PyJWT, jose, jsonwebtoken):

  key     the gateway's JWT_SECRET: in Kubernetes the mesh-owned Secret <mesh>-gateway-auth,
          key jwt-secret (or your spec.gateway.authSecretRef). Keep it server-side; never ship
          it to a browser.
  alg     HS256
  claims  sub = the signed-in customer's email (lower case)       required
          exp = now + a short lifetime, e.g. 15 min to 1 h         required
          iat = now
          iss = JWT_ISSUER, when the gateway sets one              then required
          aud = JWT_AUDIENCE, when the gateway sets one            then required
          role = "agent" for a support agent (agent API, console)  agents only

  Python: jwt.encode({"sub": email, "iat": now, "exp": now + 900, "iss": ..., "aud": ...},
                     key, algorithm="HS256")

A token speaks for exactly one customer: the gateway refuses another customer's email (403), and
answers 404 for another customer's session, transcript or result. A WebSocket is closed (4401)
when its token expires; the client reconnects with a fresh one.

Rotating the key: put the new key in JWT_SECRET and the old one in JWT_PREVIOUS_SECRET; tokens signed
with either verify, new ones are signed with JWT_SECRET. Once every old token has expired (the
longest lifetime you mint), remove JWT_PREVIOUS_SECRET.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = STOREFRONT_HOWTO
    parser.add_argument("--email", required=True, help="the customer the token speaks for")
    parser.add_argument("--ttl", type=float, default=3600.0, help="lifetime in seconds (default 3600)")
    parser.add_argument("--issuer", help="`iss` claim (default: $JWT_ISSUER)")
    parser.add_argument("--audience", help="`aud` claim (default: $JWT_AUDIENCE)")
    parser.add_argument(
        "--role",
        choices=["customer", "agent"],
        default="customer",
        help="`agent` adds the claim role=agent: the agent API and console (default: customer, no claim)",
    )


def run(args: argparse.Namespace) -> int:
    from actormesh_runtime.gateway.auth import AGENT_ROLE, mint_token
    from actormesh_runtime.gateway.models import normalize_email
    from actormesh_runtime.settings import RuntimeSettings

    settings = RuntimeSettings()
    if not settings.jwt_secret:
        print(
            "JWT_SECRET is not set: export the gateway's key (see `actormesh token --help`); "
            "a gateway without one runs only with GATEWAY_ANONYMOUS=true and needs no token",
            file=sys.stderr,
        )
        return 2
    try:
        email = normalize_email(args.email)
    except ValueError:
        print(f"--email: {args.email!r} is not a valid email address", file=sys.stderr)
        return 2
    if args.ttl <= 0:
        print("--ttl: must be positive", file=sys.stderr)
        return 2
    token = mint_token(
        settings.jwt_secret,
        email,
        ttl_s=args.ttl,
        issuer=args.issuer or settings.jwt_issuer,
        audience=args.audience or settings.jwt_audience,
        role=AGENT_ROLE if args.role == "agent" else None,
    )
    print(token)
    return 0
