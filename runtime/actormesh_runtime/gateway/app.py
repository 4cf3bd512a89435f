"""`create_app(settings)`: the gateway's FastAPI application.

Routes live in one module per concern (chat, ws, history_api, health) and share one `Gateway`
(service.py) stored on `app.state.gateway`. Errors all have the `ErrorBody` shape and name the
field at fault; CORS is off unless CORS_ORIGINS lists origins.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from nats.aio.client import Client as NATS
from starlette.exceptions import HTTPException as StarletteHTTPException

from actormesh_runtime.gateway import agent_ws, approvals_api, chat, escalations_api, health, history_api, ws
from actormesh_runtime.gateway.admission import Admission, BodyReadTimeout, subject_with_verifier
from actormesh_runtime.gateway.auth import AuthError, TokenVerifier
from actormesh_runtime.gateway.console import add_console
from actormesh_runtime.gateway.docs import add_docs
from actormesh_runtime.gateway.idempotency import HEADER, REPLAYED_HEADER, IdempotencyConflict
from actormesh_runtime.gateway.inflight import InFlight
from actormesh_runtime.gateway.limits import BodySizeLimit, body_limit
from actormesh_runtime.gateway.metrics import REQUEST_ID, ObservabilityMiddleware, install_log_filter
from actormesh_runtime.gateway.models import ErrorBody, MessageTooLong, NotFound, describe, field_errors
from actormesh_runtime.gateway.openapi import truthful_openapi
from actormesh_runtime.gateway.ratelimit import RateLimiter
from actormesh_runtime.gateway.service import Gateway, Unavailable
from actormesh_runtime.history.protocol import EscalationRefused, HistoryUnavailable
from actormesh_runtime.settings import RuntimeSettings

log = logging.getLogger(__name__)


def widget_html() -> str:
    return resources.files("actormesh_runtime.gateway").joinpath("static/widget.html").read_text("utf-8")


def create_app(
    settings: RuntimeSettings, *, nc: NATS | None = None, instance_id: str | None = None
) -> FastAPI:
    """The application; NATS is connected by its lifespan (or `nc` is used, and not closed).

    Raises `AuthNotConfigured` when there is neither JWT_SECRET nor GATEWAY_ANONYMOUS=true.
    """
    verifier = TokenVerifier.from_settings(settings)
    if verifier is None:
        log.warning(
            "GATEWAY_ANONYMOUS=true: auth is off, anyone who reaches this gateway can act as any customer"
        )
    elif settings.gateway_anonymous:
        log.warning("GATEWAY_ANONYMOUS=true is ignored: JWT_SECRET is set, so auth is on")
    gateway = Gateway(settings, nc=nc, instance_id=instance_id)
    limiter = rate_limiter(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_log_filter()
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()
            await limiter.close()

    app = FastAPI(
        title="ActorMesh gateway",
        version="1",
        summary="Customer-support chat over a mesh of actors on NATS JetStream.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load from CDNs; gateway/docs.py serves offline ones
        redoc_url=None,
        # Our middleware makes the request span (observability.tracing); FastAPI's own OpenTelemetry
        # spans would duplicate it and add one per dependency.
        telemetry={"tracing": False, "metrics": False, "logs": False, "auto_configure": False},
    )
    app.state.gateway = gateway
    app.openapi = truthful_openapi(app, settings)  # type: ignore[method-assign]
    app.state.token_verifier = verifier
    app.state.ws_chats_in_flight = InFlight(settings.ws_chats_per_customer)
    max_body = body_limit(settings.max_message_chars)
    app.add_middleware(BodySizeLimit, max_bytes=max_body)
    app.add_middleware(BodyReadTimeout, timeout_s=settings.body_read_timeout_s, max_bytes=max_body)
    app.add_middleware(
        Admission,
        limiter=limiter,
        max_concurrent=settings.max_concurrent_requests,
        subject_of=subject_with_verifier(verifier),
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID", HEADER],
            expose_headers=["X-Request-ID", REPLAYED_HEADER],
        )
    app.add_middleware(ObservabilityMiddleware)
    for module in (chat, ws, history_api, escalations_api, approvals_api, agent_ws, health):
        app.include_router(module.router)
    _add_error_handlers(app)
    _add_pages(app)
    add_console(app, mode="loopback" if verifier is None else "bearer")
    add_docs(app)
    return app


def rate_limiter(settings: RuntimeSettings) -> RateLimiter:
    """Buckets in Redis when REDIS_URL is set (shared by the replicas), else in this process."""
    redis = None
    if settings.redis_url and settings.rate_limit_requests:
        from actormesh_runtime.storage.stores import redis_client

        redis = redis_client(settings.redis_url, settings.redis_password, timeout_s=0.25)
    prefix = f"actormesh:{settings.mesh_name}:ratelimit:"
    return RateLimiter(settings.rate_limit_requests, redis=redis, prefix=prefix)


def _error(status: int, error: str, detail: str, **extra: object) -> JSONResponse:
    extra.setdefault("request_id", REQUEST_ID.get())
    body = ErrorBody.model_validate({"error": error, "detail": detail, **extra})
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Raised by the framework itself: unknown route (404), wrong method (405), and a body it
        # could not even decode (400, e.g. not UTF-8) — reported like malformed JSON, on `body`.
        if exc.status_code == 400:
            problem = "not valid JSON text (UTF-8)"
            return _error(
                422, "validation_error", f"body: {problem}", fields=[{"field": "body", "message": problem}]
            )
        response = _error(exc.status_code, "http_error", str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI parses a body as JSON only when the Content-Type says so; with any other type, or
        # none, the body reaches validation as raw bytes, whose error ("should be a valid
        # dictionary") blames a body that may be perfectly good JSON. Name the header instead.
        if isinstance(exc.body, bytes | bytearray):
            content_type = request.headers.get("content-type", "").split(";")[0].strip()
            problem = f"expected application/json, got {content_type or 'none'!r}"
            return _error(
                415,
                "unsupported_media_type",
                f"Content-Type: {problem}",
                fields=[{"field": "Content-Type", "message": problem}],
            )
        fields = field_errors(list(exc.errors()))
        return _error(422, "validation_error", describe(fields), fields=[f.model_dump() for f in fields])

    @app.exception_handler(MessageTooLong)
    async def on_too_long(_: Request, exc: MessageTooLong) -> JSONResponse:
        return _error(
            413, "too_large", f"{exc.field}: {exc}", fields=[{"field": exc.field, "message": str(exc)}]
        )

    @app.exception_handler(IdempotencyConflict)
    async def on_key_reused(_: Request, exc: IdempotencyConflict) -> JSONResponse:
        return _error(
            422, "validation_error", f"{exc.field}: {exc}", fields=[{"field": exc.field, "message": str(exc)}]
        )

    @app.exception_handler(NotFound)
    async def on_not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _error(404, "not_found", str(exc))

    @app.exception_handler(AuthError)
    async def on_auth(_: Request, exc: AuthError) -> JSONResponse:
        return _error(exc.status, "unauthorized" if exc.status == 401 else "forbidden", exc.detail)

    @app.exception_handler(Unavailable)
    async def on_unavailable(_: Request, exc: Unavailable) -> JSONResponse:
        return _error(503, "unavailable", f"the mesh is not reachable: {exc}")

    @app.exception_handler(EscalationRefused)
    async def on_refused(_: Request, exc: EscalationRefused) -> JSONResponse:
        if exc.kind == "invalid":  # "field: problem", from the history service's own checks
            field, _sep, problem = exc.detail.partition(": ")
            return _error(422, "validation_error", exc.detail, fields=[{"field": field, "message": problem}])
        status, error = {"not_found": (404, "not_found"), "forbidden": (403, "forbidden")}.get(
            exc.kind, (409, "conflict")
        )
        return _error(status, error, exc.detail)

    @app.exception_handler(HistoryUnavailable)
    async def on_history(_: Request, exc: HistoryUnavailable) -> JSONResponse:
        return _error(503, "history_unavailable", str(exc))

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        # Runs outside the observability middleware (its request-id context is gone), so the id is
        # read from the request state it left behind. The server logs the traceback.
        request_id = getattr(request.state, "request_id", None)
        detail = "the gateway failed to handle this request"
        return _error(500, "internal_error", detail, request_id=request_id)


def _add_pages(app: FastAPI) -> None:
    page = widget_html()  # read once here: a file read per request would block the event loop

    @app.get("/widget", response_class=HTMLResponse, include_in_schema=False)
    async def widget() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/widget")
