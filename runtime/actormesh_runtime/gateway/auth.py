"""Bearer-token auth: an HS256 JWT whose `sub` is the customer's email. On by default.

`TokenVerifier.from_settings` is built once per app (`create_app`), and refuses to build (raises
`AuthNotConfigured`) when neither `JWT_SECRET` nor `GATEWAY_ANONYMOUS=true` is set: a forgotten key
stops the gateway instead of opening it. Anonymous mode (`verifier is None`) lets anyone act as any
customer; `actormesh dev` asks for it on loopback and says so on screen.

With a key: `/api/chat`, `/ws` and the history endpoints need a valid token — missing or bad → 401; a
token for one customer asking about another's data → 403 or 404 (see history_api). Verification
accepts `JWT_SECRET` and, during a rotation, `JWT_PREVIOUS_SECRET`; `iss`/`aud` are checked when
`JWT_ISSUER`/`JWT_AUDIENCE` are set. Browsers cannot set headers on WebSockets, so `/ws` takes the
token as a `Sec-WebSocket-Protocol` entry (`actormesh.bearer.<jwt>`), or, for old clients, `?token=`.
"""

from __future__ import annotations

import time

import jwt
from pydantic import BaseModel

from actormesh_runtime.settings import RuntimeSettings

ALGORITHM = "HS256"
LEEWAY_S = 30
WS_PROTOCOL = "actormesh.v1"
"""The subprotocol the server selects; browsers require one to be echoed when any was offered."""
WS_BEARER_PREFIX = "actormesh.bearer."
"""A `Sec-WebSocket-Protocol` entry carrying the token (never echoed back)."""
AGENT_ROLE = "agent"
"""The `role` claim of a support agent's token: it opens the agent API (`gateway/escalations_api.py`)."""


class AuthNotConfigured(RuntimeError):
    """Neither a signing key nor explicit anonymous mode: the gateway must not start."""


class AuthError(Exception):
    """Refused: `status` is 401 (who are you?) or 403 (not yours)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Principal(BaseModel):
    """Who is calling. `email` None means anonymous mode (anyone may act as anyone)."""

    email: str | None = None
    expires_at: float | None = None
    """The token's `exp` (epoch seconds); a WebSocket is closed then."""
    role: str | None = None
    """The token's `role` claim: `AGENT_ROLE` opens the agent API."""

    def check_email(self, email: str) -> None:
        """403 unless anonymous or the email is the token's subject."""
        if self.email is not None and self.email != email.strip().lower():
            raise AuthError(403, "customer_email does not match the bearer token")


OPEN = Principal()


def auth_problem(settings: RuntimeSettings) -> str | None:
    """Why this configuration must not serve (None: it may). Names every variable involved."""
    if settings.jwt_secret is None and settings.jwt_previous_secret is not None:
        return "JWT_PREVIOUS_SECRET is set without JWT_SECRET: set the new key in JWT_SECRET"
    if settings.jwt_secret is None and not settings.gateway_anonymous:
        return (
            "the gateway needs JWT_SECRET (an HS256 key of at least 32 bytes that verifies customers' "
            "tokens; mint one with `actormesh token`) or, for local development only, "
            "GATEWAY_ANONYMOUS=true (no auth: anyone can act as any customer)"
        )
    return None


class TokenVerifier:
    """Verifies bearer tokens with the current key, then the previous one (rotation)."""

    def __init__(self, keys: list[str], *, issuer: str | None = None, audience: str | None = None) -> None:
        if not keys:
            raise ValueError("at least one key")
        self.keys = keys
        self.issuer = issuer
        self.audience = audience

    @classmethod
    def from_settings(cls, settings: RuntimeSettings) -> TokenVerifier | None:
        """The verifier, None in anonymous mode; `AuthNotConfigured` when neither is configured."""
        problem = auth_problem(settings)
        if problem is not None:
            raise AuthNotConfigured(problem)
        if settings.jwt_secret is None:
            return None
        keys = [settings.jwt_secret]
        if settings.jwt_previous_secret:
            keys.append(settings.jwt_previous_secret)
        return cls(keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience)

    def verify(self, token: str) -> Principal:
        required = ["sub", "exp"] + (["iss"] if self.issuer else []) + (["aud"] if self.audience else [])
        claims: dict[str, object] | None = None
        for key in self.keys:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[ALGORITHM],
                    leeway=LEEWAY_S,
                    issuer=self.issuer,
                    audience=self.audience,
                    options={"require": required, "verify_aud": self.audience is not None},
                )
                break
            except jwt.InvalidSignatureError:
                continue  # maybe signed with the previous key
            except jwt.PyJWTError as exc:
                raise AuthError(401, f"invalid bearer token: {exc}") from exc
        if claims is None:
            raise AuthError(401, "invalid bearer token: signature verification failed")
        sub = claims.get("sub")
        if not isinstance(sub, str) or "@" not in sub:
            raise AuthError(401, "the token's sub must be the customer's email")
        exp = claims.get("exp")
        role = claims.get("role")
        return Principal(
            email=sub.strip().lower(),
            expires_at=float(exp) if isinstance(exp, int | float) else None,
            role=role if isinstance(role, str) else None,
        )


def mint_token(
    secret: str,
    email: str,
    *,
    ttl_s: float = 3600.0,
    issuer: str | None = None,
    audience: str | None = None,
    role: str | None = None,
) -> str:
    """What a storefront's backend does for a signed-in customer (see `actormesh token --help`);
    `role="agent"` for a support agent (the agent API and console)."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": email.strip().lower(), "iat": now, "exp": now + int(ttl_s)}
    if role:
        claims["role"] = role
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def bearer_from_header(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def bearer_from_subprotocols(offered: list[str]) -> str | None:
    """The token among the offered WebSocket subprotocols (`actormesh.bearer.<jwt>`), if any."""
    for entry in offered:
        if entry.startswith(WS_BEARER_PREFIX):
            return entry[len(WS_BEARER_PREFIX) :] or None
    return None


def authenticate(verifier: TokenVerifier | None, token: str | None) -> Principal:
    """The caller's principal: OPEN in anonymous mode, else the verified token's subject, else 401."""
    if verifier is None:
        return OPEN
    if not token:
        raise AuthError(401, "a bearer token is required")
    return verifier.verify(token)
