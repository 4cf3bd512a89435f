"""Probes and metrics: `GET /api/health` (liveness), `GET /api/ready` (readiness), `GET /metrics`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from actormesh_runtime.gateway.deps import get_gateway
from actormesh_runtime.gateway.models import HealthBody, ReadyBody
from actormesh_runtime.gateway.service import Gateway

router = APIRouter(tags=["operations"])


@router.get("/api/health", response_model=HealthBody)
async def health(gateway: Annotated[Gateway, Depends(get_gateway)]) -> HealthBody:
    """200 while the process serves requests (it does not look at NATS: that is readiness)."""
    return HealthBody(instance_id=gateway.instance_id)


@router.get("/api/ready", response_model=ReadyBody, responses={503: {"model": ReadyBody}})
async def ready(gateway: Annotated[Gateway, Depends(get_gateway)]) -> JSONResponse:
    """200 when NATS is connected and the mesh's stream exists; 503 naming what is missing."""
    checks = await gateway.readiness()
    body = ReadyBody(
        ready=all(checks.values()), checks=checks, missing=[k for k, ok in checks.items() if not ok]
    )
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
