"""`spec.gateway.httpRoute`: the gateway published through the Gateway API (`gateway.networking.k8s.io/v1`).

Part of the spec model (re-exported by `api/spec.py`, used in `GatewaySpec`). `builders/gateway.py`
renders it as an `HTTPRoute` to the gateway Service when the API server serves HTTPRoutes; otherwise
`status.py` says so in the `HTTPRouteReady` condition and the rest of the mesh is reconciled as usual
(the same pattern as `spec.monitoring` and its CRDs).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from actormesh_operator.api.types import DNS1123_LABEL, ApiModel

HOSTNAME_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""The Gateway API's `Hostname`: a DNS name, optionally with one leading `*.` label; no IP, no port."""
OBJECT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
PATH_PREFIX_PATTERN = r"^(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$"
"""`/support` or `/shop/support`: absolute, no trailing slash, no empty segment (then `/api` follows)."""
ROUTE_NEEDS_PARENT = (
    "spec.gateway.httpRoute.parentRefs needs at least one Gateway when spec.gateway.httpRoute.enabled is true"
)


class GatewayParentRef(ApiModel):
    """The Gateway (and optionally its listener) the route attaches to."""

    name: str = Field(min_length=1, max_length=253, pattern=OBJECT_NAME_PATTERN)
    """The Gateway's name."""
    namespace: str | None = Field(None, max_length=63, pattern=DNS1123_LABEL)
    """The Gateway's namespace (unset: the mesh's). A Gateway in another namespace must allow routes
    from this one (`listeners[].allowedRoutes.namespaces`)."""
    section_name: str | None = Field(None, min_length=1, max_length=253, pattern=OBJECT_NAME_PATTERN)
    """A listener of that Gateway by name (unset: every listener that accepts the route)."""
    port: int | None = Field(None, ge=1, le=65535)
    """A listener of that Gateway by port (unset: any)."""


class HTTPRouteSpec(ApiModel):
    """An HTTPRoute publishing the chat API, the WebSocket and the widget: the Gateway API's successor
    to `spec.gateway.ingress`. Both may be on at once (a migration from one to the other); each routes
    to the same gateway Service."""

    enabled: bool = False
    parent_refs: list[GatewayParentRef] = Field(default_factory=list, max_length=32)
    """Gateways the route attaches to (at least one when enabled)."""
    hostnames: list[Annotated[str, Field(min_length=1, max_length=253, pattern=HOSTNAME_PATTERN)]] = Field(
        default_factory=list, max_length=16
    )
    """Host names the route answers, e.g. `support.example.com` or `*.example.com` (unset: the
    listeners' host names)."""
    path_prefix: str | None = Field(None, max_length=200, pattern=PATH_PREFIX_PATTERN)
    """Publish under this prefix, e.g. `/support` → `/support/api/...`; the route strips it before the
    gateway (URLRewrite), which serves at `/`. Unset: `/api`, `/ws`, `/widget` at the root."""

    @model_validator(mode="after")
    def _parent_when_enabled(self) -> HTTPRouteSpec:
        if self.enabled and not self.parent_refs:
            raise ValueError(ROUTE_NEEDS_PARENT)
        return self
