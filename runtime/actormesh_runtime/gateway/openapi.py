"""The gateway's OpenAPI document, made to tell the truth about what the gateway answers.

FastAPI documents a 422 `HTTPValidationError` the gateway never sends (its 422 is `ErrorBody`), and
knows nothing of the answers given before routing: the limits (429, 503 overloaded, 408), the body
size bound (413) and the 500 of a bug. `truthful_openapi(app, settings)` builds FastAPI's document
once and then fixes it: every 422 is `ErrorBody`, every operation lists what the middleware may
answer, and the message's `maxLength` is this deployment's `MAX_MESSAGE_CHARS`. With auth on, every
operation that may answer 401 declares the bearer-JWT scheme it needs (none is declared in anonymous
mode, where no operation asks for a token). The contract test
(tests/integration/test_gateway_contract.py) runs schemathesis with all checks against a live gateway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from actormesh_runtime.gateway.admission import is_limited
from actormesh_runtime.gateway.deps import get_verifier
from actormesh_runtime.settings import RuntimeSettings

ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "string"}}
}


def _error(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": ERROR_BODY}
    if retry_after:
        response["headers"] = RETRY_AFTER
    return response


def _fix_operation(path: str, method: str, op: dict[str, Any], settings: RuntimeSettings) -> None:
    responses: dict[str, Any] = op.setdefault("responses", {})
    if "422" in responses:
        responses["422"] = _error("A field is missing, malformed or unknown; `fields` names each one.")
    responses.setdefault("500", _error("A bug in the gateway; the body carries the request id to report."))
    if method in ("post", "put", "patch"):
        responses.setdefault(
            "413",
            _error(
                f"The body is larger than any valid request (MAX_MESSAGE_CHARS {settings.max_message_chars})."
            ),
        )
        responses.setdefault("408", _error("The body did not arrive within BODY_READ_TIMEOUT_S."))
    if "requestBody" in op:
        responses.setdefault(
            "415", _error("The body was sent with a Content-Type other than JSON; `fields` names the header.")
        )
    if is_limited(path):
        responses["429"] = _error(
            "Over RATE_LIMIT_REQUESTS for this caller (the verified token's subject, an agent's apart from "
            "a customer's; else the address); `limit` names it.",
            retry_after=True,
        )
        overloaded = "MAX_CONCURRENT_REQUESTS reached on this replica (`limit` names it)"
        previous = responses.get("503", {}).get("description")
        text = f"{previous}; or {overloaded}" if previous else overloaded.capitalize()
        responses["503"] = _error(text, retry_after=True)


BEARER = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "A customer's token (the agent API: a support agent's); see `actormesh token`.",
}


def _fix_document(schema: dict[str, Any], settings: RuntimeSettings, *, auth: bool) -> dict[str, Any]:
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            _fix_operation(path, method, op, settings)
            if auth and "401" in op.get("responses", {}):
                op["security"] = [{"bearer": []}]
    if auth:
        schema.setdefault("components", {})["securitySchemes"] = {"bearer": BEARER}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    message = components.get("ChatRequest", {}).get("properties", {}).get("message")
    if message is not None:
        message["maxLength"] = settings.max_message_chars
    return schema


def truthful_openapi(app: FastAPI, settings: RuntimeSettings) -> Callable[[], dict[str, Any]]:
    """A replacement for `app.openapi` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            auth = get_verifier(app) is not None
            app.openapi_schema = _fix_document(document, settings, auth=auth)
        return app.openapi_schema

    return openapi
