"""`WS /ws/agent`: live escalation events for agent consoles.

Same handshake as `/ws`: the token in `Sec-WebSocket-Protocol` as `actormesh.bearer.<jwt>` next to
`actormesh.v1`; it must carry `role: agent` (without JWT_SECRET: loopback callers only). The server
sends `{"type": "connected", "agent", "instance_id"}`, then one frame per event, flat:
`{"type": "escalation.created" | "escalation.updated", "change", "escalation": record}`, whichever
replica the change was made through; `{"type": "ping"}` is answered with `pong`. The socket is
closed (4401) when the token expires, and (1003) on a binary frame. Events missed while disconnected:
reload the list.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from actormesh_runtime.gateway.auth import (
    WS_PROTOCOL,
    AuthError,
    bearer_from_header,
    bearer_from_subprotocols,
)
from actormesh_runtime.gateway.deps import get_verifier
from actormesh_runtime.gateway.escalations_api import Agent, identify_agent
from actormesh_runtime.gateway.frames import MalformedFrame, parse_frame
from actormesh_runtime.gateway.service import Gateway
from actormesh_runtime.gateway.ws import CLOSE_TOKEN_EXPIRED, deny_handshake

router = APIRouter()

MAX_FRAME_CHARS = 4096
"""Agents send only pings: anything bigger is not ours."""
CLOSE_UNSUPPORTED_DATA = 1003
"""RFC 6455 "unsupported data": this protocol has no error frame to answer a binary frame with, and
the client that sends one is not speaking it."""


def _agent(websocket: WebSocket) -> Agent:
    offered = list(websocket.scope.get("subprotocols") or [])
    token = bearer_from_subprotocols(offered) or bearer_from_header(websocket.headers.get("authorization"))
    client = websocket.client.host if websocket.client else None
    return identify_agent(get_verifier(websocket.app), client, token)


@router.websocket("/ws/agent")
async def agent_socket(websocket: WebSocket) -> None:
    gateway: Gateway = websocket.app.state.gateway
    try:
        agent = _agent(websocket)
    except AuthError as exc:
        await deny_handshake(websocket, exc.status, exc.detail)
        return
    offered = list(websocket.scope.get("subprotocols") or [])
    await websocket.accept(subprotocol=WS_PROTOCOL if WS_PROTOCOL in offered else None)
    lock = asyncio.Lock()

    async def send(frame: dict[str, Any]) -> None:
        async with lock:
            await websocket.send_text(json.dumps(frame, default=str))

    async def on_event(frame: dict[str, Any]) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await send(frame)

    gateway.escalation_feed.add_agent(on_event)
    try:
        await send({"type": "connected", "agent": agent.name, "instance_id": gateway.instance_id})
        await _receive(websocket, send, agent.expires_at)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        gateway.escalation_feed.remove_agent(on_event)


async def _receive(websocket: WebSocket, send: Any, expires_at: float | None) -> None:
    while True:
        timeout = None if expires_at is None else max(0.0, expires_at - time.time())
        try:
            # Not `receive_text`: on a binary frame it raises KeyError, which uvicorn logged as our
            # crash, dropping the connection without a close frame or a word on why.
            message = await asyncio.wait_for(websocket.receive(), timeout=timeout)
        except TimeoutError:
            await websocket.close(code=CLOSE_TOKEN_EXPIRED, reason="token expired")
            return
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            await websocket.close(
                code=CLOSE_UNSUPPORTED_DATA, reason="binary frames are not supported; send JSON text frames"
            )
            return
        if len(text) > MAX_FRAME_CHARS:
            continue
        with contextlib.suppress(MalformedFrame):
            frame = parse_frame(text)
            if isinstance(frame, dict) and frame.get("type") == "ping":
                await send({"type": "pong", "ts": time.time()})
