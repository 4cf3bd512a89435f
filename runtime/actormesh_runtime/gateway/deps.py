"""FastAPI dependencies shared by the route modules: the process's `Gateway` and the caller's principal."""

from __future__ import annotations

from fastapi import Request

from actormesh_runtime.gateway.auth import Principal, authenticate, bearer_from_header
from actormesh_runtime.gateway.service import Gateway


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def get_principal(request: Request) -> Principal:
    """The verified caller (raises `AuthError` → 401); the open principal when JWT_SECRET is unset."""
    gateway = get_gateway(request)
    token = bearer_from_header(request.headers.get("authorization"))
    return authenticate(gateway.settings.jwt_secret, token)
