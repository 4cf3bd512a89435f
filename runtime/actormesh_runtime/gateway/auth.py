"""Optional bearer-token auth (HS256 JWT whose `sub` is the customer's email).

`JWT_SECRET` unset: the gateway is open (local development). Set: `/api/chat`, `/ws` and the history
endpoints need a valid token — missing or bad → 401; a token for one customer asking about another
(body email, stored conversation or result of someone else) → 403. WebSockets cannot send headers
from a browser, so `/ws` also accepts the token as `?token=`.
"""

from __future__ import annotations

import time

import jwt
from pydantic import BaseModel

ALGORITHM = "HS256"
LEEWAY_S = 30


class AuthError(Exception):
    """Refused: `status` is 401 (who are you?) or 403 (not yours)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Principal(BaseModel):
    """Who is calling. `email` None means auth is off (anyone may act as anyone)."""

    email: str | None = None

    def check_email(self, email: str) -> None:
        """403 unless auth is off or the email is the token's subject."""
        if self.email is not None and self.email != email.strip().lower():
            raise AuthError(403, "customer_email does not match the bearer token")


OPEN = Principal()


def mint_token(secret: str, email: str, *, ttl_s: float = 3600.0) -> str:
    now = int(time.time())
    claims = {"sub": email.strip().lower(), "iat": now, "exp": now + int(ttl_s)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def bearer_from_header(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def authenticate(secret: str | None, token: str | None) -> Principal:
    """The caller's principal: OPEN when auth is off, else the verified token's subject, else 401."""
    if not secret:
        return OPEN
    if not token:
        raise AuthError(401, "a bearer token is required")
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], leeway=LEEWAY_S, options={"require": ["sub", "exp"]}
        )
    except jwt.PyJWTError as exc:
        raise AuthError(401, f"invalid bearer token: {exc}") from exc
    sub = claims.get("sub")
    if not isinstance(sub, str) or "@" not in sub:
        raise AuthError(401, "the token's sub must be the customer's email")
    return Principal(email=sub.strip().lower())
