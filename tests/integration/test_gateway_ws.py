"""The WebSocket channel through the real stack: progress frames in route order, then the response;
malformed frames answered with `error`; auth on the handshake."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from actormesh_runtime.catalog import ActorName
from actormesh_runtime.gateway.app import create_app
from actormesh_runtime.gateway.auth import mint_token
from actormesh_runtime.gateway.server import GatewayServer
from actormesh_runtime.local.mesh import LocalMesh
from tests.support.eventually import eventually_async
from tests.support.gateway import JANE, JOHN, gateway_stack, slow_factory, stack_settings, wait_ready

pytestmark = pytest.mark.integration


def ws_url(http_url: str, query: str = "") -> str:
    return http_url.replace("http://", "ws://") + "/ws" + (f"?{query}" if query else "")


async def recv(ws: ClientConnection, timeout_s: float = 30.0) -> dict[str, Any]:
    frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=timeout_s))
    assert set(frame) == {"type", "data"}
    return frame  # type: ignore[no-any-return]


async def until(ws: ClientConnection, kind: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Frames before the first `kind` frame (or an error), and that frame."""
    before = []
    while True:
        frame = await recv(ws)
        if frame["type"] in (kind, "error"):
            return before, frame
        before.append(frame)


async def test_progress_frames_in_route_order_then_response(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path)
    async with gateway_stack(settings) as stack, connect(ws_url(stack.url, "session_id=ws-1")) as ws:
        connected = await recv(ws)
        assert connected["type"] == "connected"
        assert connected["data"]["session_id"] == "ws-1"

        for text, email, expect_actor in [
            ("Please cancel my order ORD-20001", JANE, ActorName.EXECUTION_COORDINATOR),
            ("I want to speak to a manager", JOHN, ActorName.ESCALATION_ROUTER),
        ]:
            await ws.send(json.dumps({"type": "chat", "data": {"message": text, "customer_email": email}}))
            accepted = await recv(ws)
            assert accepted["type"] == "accepted", accepted
            message_id = accepted["data"]["message_id"]
            progress, response = await until(ws, "response")
            assert response["type"] == "response", response
            result = response["data"]
            assert result["message_id"] == message_id
            assert {f["type"] for f in progress} == {"progress"}
            assert {f["data"]["message_id"] for f in progress} == {message_id}
            hops = [(f["data"]["actor"], f["data"]["status"]) for f in progress]
            route = [(t["actor"], "done") for t in result["trace"]]
            assert hops == route, f"progress {hops} != route {route}"
            assert expect_actor.value in [actor for actor, _ in hops]
            assert hops[-1][0] == ActorName.RESPONSE_AGGREGATOR.value

        await ws.send(json.dumps({"type": "ping"}))
        assert (await recv(ws))["type"] == "pong"


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        pytest.param("{not json", "malformed JSON", id="malformed"),
        # The parser's RecursionError is a RuntimeError, which the receive loop took for a closed socket.
        pytest.param("[" * 50_000, "nested too deeply", id="deeply-nested"),
        pytest.param("[1, 2]", "JSON object", id="not-object"),
        pytest.param(json.dumps({"type": "dance"}), "unknown frame type", id="unknown-type"),
        pytest.param(json.dumps({"type": "chat", "data": "hi"}), "must be an object", id="data-not-object"),
        pytest.param(json.dumps({"type": "chat", "data": {"message": " ", "customer_email": JOHN}}),
                     "message", id="empty-message"),
        pytest.param(json.dumps({"type": "chat", "data": {"message": "hi", "customer_email": "nope"}}),
                     "customer_email", id="bad-email"),
        pytest.param(json.dumps({"type": "chat", "data": {"message": "x" * 41, "customer_email": JOHN}}),
                     "limit", id="too-long"),
    ],
)  # fmt: skip
async def test_bad_frames_get_an_error_and_the_socket_stays_usable(
    nats_server: str, tmp_path: Path, raw: str, needle: str
) -> None:

    settings = stack_settings(nats_server, tmp_path, max_message_chars=40)
    async with GatewayServer(create_app(settings), port=0) as server:
        await wait_ready(server.url)
        async with connect(ws_url(server.url)) as ws:
            assert (await recv(ws))["type"] == "connected"
            await ws.send(raw)
            error = await recv(ws)
            assert error["type"] == "error"
            assert needle in error["data"]["message"]
            await ws.send(b"\x00binary")
            assert (await recv(ws))["type"] == "error"
            await ws.send(json.dumps({"type": "ping"}))
            assert (await recv(ws))["type"] == "pong"


async def test_a_deeply_nested_frame_does_not_take_the_chat_in_flight_down(
    nats_server: str, tmp_path: Path
) -> None:
    settings = stack_settings(nats_server, tmp_path)
    factory = slow_factory(ActorName.CONTEXT_RETRIEVER, delay_s=1.0)
    stack_cm = gateway_stack(settings, factory=factory, history=False)
    async with stack_cm as stack, connect(ws_url(stack.url)) as ws:
        assert (await recv(ws))["type"] == "connected"
        chat = {"message": "Where is my order ORD-10002?", "customer_email": JOHN}
        await ws.send(json.dumps({"type": "chat", "data": chat}))
        assert (await recv(ws))["type"] == "accepted"
        await ws.send("[" * 50_000)
        frames = [await recv(ws)]
        while frames[-1]["type"] != "response":
            frames.append(await recv(ws))
    errors = [f["data"]["message"] for f in frames if f["type"] == "error"]
    assert len(errors) == 1, errors
    assert "nested too deeply" in errors[0]


async def test_a_socket_closed_mid_chat_leaves_no_request_pending_and_its_late_result_is_kept(
    nats_server: str, tmp_path: Path
) -> None:
    settings = stack_settings(nats_server, tmp_path, request_timeout_s=30.0)
    factory = slow_factory(ActorName.CONTEXT_RETRIEVER, delay_s=2.0)
    async with LocalMesh(settings, nats_url=settings.nats_url, factory=factory) as mesh:
        app = create_app(mesh.settings)
        server = await mesh.enter_context(GatewayServer(app, port=0))
        await wait_ready(server.url)
        replies = app.state.gateway.replies
        async with connect(ws_url(server.url)) as ws:
            assert (await recv(ws))["type"] == "connected"
            chat = {"message": "Where is my order ORD-10002?", "customer_email": JOHN}
            await ws.send(json.dumps({"type": "chat", "data": chat}))
            accepted = await recv(ws)
            assert accepted["type"] == "accepted", accepted
            assert replies.in_flight == 1
        # The client left while its chat waited (before the first history check): the request must
        # not stay pending for good, and the result, when it comes, is kept for GET /api/messages.
        await eventually_async(lambda: replies.in_flight == 0, what="no request left pending")
        message_id = accepted["data"]["message_id"]
        await eventually_async(
            lambda: replies.late_result(message_id), what="the late result kept", timeout_s=30
        )


@pytest.mark.parametrize(
    "session_id",
    [pytest.param("a" * 129, id="too-long"), pytest.param("sess-nl%0A", id="trailing-newline")],
)
async def test_a_malformed_session_id_refuses_the_handshake_with_422(
    nats_server: str, tmp_path: Path, session_id: str
) -> None:
    settings = stack_settings(nats_server, tmp_path)
    async with GatewayServer(create_app(settings), port=0) as server:
        await wait_ready(server.url)
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(server.url, f"session_id={session_id}")):
                pass
    assert refused.value.response.status_code == 422
    assert b"session_id" in refused.value.response.body


async def test_ws_timeout_ends_with_an_error_naming_the_message(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path, request_timeout_s=1.0)
    factory = slow_factory(ActorName.CONTEXT_RETRIEVER, delay_s=3.0)
    async with (
        gateway_stack(settings, factory=factory, history=False) as stack,
        connect(ws_url(stack.url)) as ws,
    ):
        assert (await recv(ws))["type"] == "connected"
        chat = {"message": "Where is my order ORD-10002?", "customer_email": JOHN}
        await ws.send(json.dumps({"type": "chat", "data": chat}))
        accepted = await recv(ws)
        progress, error = await until(ws, "response")
    # Live progress (not rebuilt from a result: there is none) for the hops before the slow actor.
    assert [f["data"]["actor"] for f in progress] == ["sentiment_analyzer", "intent_analyzer"]
    assert error["type"] == "error"
    assert error["data"]["status"] == 504
    assert error["data"]["message_id"] == accepted["data"]["message_id"]


async def test_ws_handshake_requires_a_token_when_auth_is_on(nats_server: str, tmp_path: Path) -> None:

    secret = "ws-secret-with-enough-length-0123456789"
    settings = stack_settings(nats_server, tmp_path, jwt_secret=secret)
    async with GatewayServer(create_app(settings), port=0) as server:
        await wait_ready(server.url)
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(server.url)):
                pass
        assert refused.value.response.status_code == 401
        token = mint_token(secret, JOHN)
        async with connect(ws_url(server.url, f"token={token}")) as ws:
            connected = await recv(ws)
            assert connected["data"]["customer_email"] == JOHN
            chat = {"message": "hello", "customer_email": JANE}
            await ws.send(json.dumps({"type": "chat", "data": chat}))
            error = await recv(ws)
    assert error["type"] == "error"
    assert error["data"]["status"] == 403
