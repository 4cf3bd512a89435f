"""FastAPI dependencies shared by the route modules: the process's `Gateway` and the caller's principal."""

from __future__ import annotations

from fastapi import Request

from actormesh_runtime.gateway.auth import Principal, TokenVerifier, authenticate, bearer_from_header
from actormesh_runtime.gateway.service import Gateway


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def get_verifier(app: object) -> TokenVerifier | None:
    """The app's token verifier (None: anonymous mode), built once by `create_app`."""
    verifier: TokenVerifier | None = app.state.token_verifier  # type: ignore[attr-defined]
    return verifier


def get_principal(request: Request) -> Principal:
    """The verified caller (raises `AuthError` → 401); the open principal in anonymous mode."""
    token = bearer_from_header(request.headers.get("authorization"))
    return authenticate(get_verifier(request.app), token)
