"""`POST /api/chat`: one message in, the final result out (or 504 with the message id to fetch later)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from actormesh_runtime.envelope import FinalResult
from actormesh_runtime.gateway.auth import Principal
from actormesh_runtime.gateway.deps import get_gateway, get_principal
from actormesh_runtime.gateway.metrics import CHATS, REQUEST_ID
from actormesh_runtime.gateway.models import ChatRequest, ErrorBody, TimeoutBody, check_length
from actormesh_runtime.gateway.service import Gateway

router = APIRouter(tags=["chat"])


@router.post(
    "/api/chat",
    response_model=FinalResult,
    responses={
        401: {"model": ErrorBody, "description": "JWT_SECRET is set and the bearer token is missing or bad"},
        403: {"model": ErrorBody, "description": "customer_email (or session) is not the token's customer"},
        413: {"model": ErrorBody, "description": "message longer than MAX_MESSAGE_CHARS"},
        422: {"model": ErrorBody, "description": "empty message, malformed email or session id"},
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
) -> FinalResult | JSONResponse:
    """Send one customer message through the mesh and wait (bounded) for the agent's answer."""
    check_length(body, gateway.settings.max_message_chars)
    principal.check_email(body.customer_email)
    session_id = await gateway.claim_session(principal, body)
    submitted = await gateway.submit(body, session_id)
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
    return result
