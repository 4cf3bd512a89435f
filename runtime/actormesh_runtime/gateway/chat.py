"""`POST /api/chat`: one message in, the final result out (or 504 with the message id to fetch later).

An optional `Idempotency-Key` header makes retries safe (`gateway/idempotency.py`): a retry gets the
first attempt's answer, marked `Idempotent-Replayed: true`, and never starts a second turn.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse

from actormesh_runtime.envelope import FinalResult
from actormesh_runtime.gateway.auth import Principal
from actormesh_runtime.gateway.deps import get_gateway, get_principal
from actormesh_runtime.gateway.idempotency import HEADER, KEY_MAX_CHARS, KEY_RE, REPLAYED_HEADER
from actormesh_runtime.gateway.metrics import CHATS, REQUEST_ID
from actormesh_runtime.gateway.models import ChatRequest, ErrorBody, TimeoutBody, check_length
from actormesh_runtime.gateway.service import Gateway

router = APIRouter(tags=["chat"])

KEY_DESCRIPTION = (
    "Makes a retry safe (draft-ietf-httpapi-idempotency-key-header): every request with the same key "
    "(per customer) is one conversation turn. A retry gets the first request's result (marked "
    "`Idempotent-Replayed: true`), or waits for it while it is still being processed; the same key "
    "with a different request is refused with 422. Kept 24 h. A UUID is a good key."
)
REPLAYED = {
    REPLAYED_HEADER: {
        "description": "Present when the answer is an earlier request's with the same Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


@router.post(
    "/api/chat",
    response_model=FinalResult,
    responses={
        200: {"headers": REPLAYED},
        401: {"model": ErrorBody, "description": "JWT_SECRET is set and the bearer token is missing or bad"},
        403: {"model": ErrorBody, "description": "customer_email (or session) is not the token's customer"},
        413: {"model": ErrorBody, "description": "message longer than MAX_MESSAGE_CHARS"},
        422: {
            "model": ErrorBody,
            "description": "empty message, malformed email, session id or Idempotency-Key, or an "
            "Idempotency-Key used before with a different request",
        },
        503: {"model": ErrorBody, "description": "the bus is not reachable"},
        504: {
            "model": TimeoutBody,
            "description": "no reply within REQUEST_TIMEOUT_S; fetch result_url later",
        },
    },
)
async def post_chat(
    body: ChatRequest,
    gateway: Annotated[Gateway, Depends(get_gateway)],
    principal: Annotated[Principal, Depends(get_principal)],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            min_length=1,
            max_length=KEY_MAX_CHARS,
            pattern=KEY_RE.pattern,
            description=KEY_DESCRIPTION,
        ),
    ] = None,
) -> FinalResult | JSONResponse:
    """Send one customer message through the mesh and wait (bounded) for the agent's answer."""
    check_length(body, gateway.settings.max_message_chars)
    principal.check_email(body.customer_email)
    outcome = await gateway.start_chat(principal, body, idempotency_key, session_as_sent=body.session_id)
    if isinstance(outcome, FinalResult):
        CHATS.labels("http", "replayed").inc()
        return _replayed(outcome)
    submitted = outcome
    try:
        result = await gateway.wait(submitted)
    except TimeoutError:
        CHATS.labels("http", "timeout").inc()
        timeout = TimeoutBody(
            error="timeout",
            detail=(
                f"no reply within {gateway.settings.request_timeout_s:g}s; the conversation continues "
                "and its result can be fetched from result_url"
            ),
            message_id=submitted.message_id,
            session_id=submitted.session_id,
            request_id=REQUEST_ID.get(),
            result_url=f"/api/messages/{submitted.message_id}",
        )
        return JSONResponse(timeout.model_dump(mode="json"), status_code=504)
    CHATS.labels("http", "ok").inc()
    # Only a keyed request can meet an earlier attempt; an unkeyed one's duplicate is its own publish,
    # retried after a lost acknowledgement.
    return _replayed(result) if idempotency_key is not None and submitted.duplicate else result


def _replayed(result: FinalResult) -> JSONResponse:
    """The answer of an earlier request with the same key (stored, or waited for with it)."""
    return JSONResponse(result.model_dump(mode="json"), headers={REPLAYED_HEADER: "true"})
