"""`/ws/agent` in-process (ASGI, no sockets, no NATS): the same callers as the agent HTTP API, named
by their token, and the socket closed (4401) when that token expires.

The app's lifespan is not run, so the gateway never connects; the live events themselves are proven
against a real mesh in tests/integration/test_escalations_api.py and test_approvals.py.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from actormesh_runtime.gateway.app import create_app
from actormesh_runtime.gateway.auth import WS_BEARER_PREFIX, WS_PROTOCOL, mint_token
from actormesh_runtime.gateway.ws import CLOSE_TOKEN_EXPIRED
from actormesh_runtime.settings import RuntimeSettings

SECRET = "agent-ws-unit-secret-with-enough-length-0123"
AGENT = "alice@shop.example"


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app(RuntimeSettings(nats_url="nats://127.0.0.1:1", jwt_secret=SECRET)))


def _offered(token: str) -> list[str]:
    return [WS_PROTOCOL, WS_BEARER_PREFIX + token]


def test_the_agent_is_named_by_the_token_and_the_socket_closes_when_it_expires(client: TestClient) -> None:
    token = mint_token(SECRET, AGENT, ttl_s=3, role="agent")  # exp is whole seconds: 1 s could be 0.1 s
    with client.websocket_connect("/ws/agent", subprotocols=_offered(token)) as ws:
        connected = ws.receive_json()
        assert connected["type"] == "connected"
        assert connected["agent"] == AGENT
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()  # nothing else is sent: the next thing is the close at `exp`
    assert closed.value.code == CLOSE_TOKEN_EXPIRED


@pytest.mark.parametrize(
    ("token", "status"),
    [
        pytest.param(None, 401, id="no-token"),
        pytest.param(mint_token(SECRET, "john.doe@example.com"), 403, id="customer-token"),
    ],
)
def test_only_agents_open_the_socket(client: TestClient, token: str | None, status: int) -> None:
    offered = _offered(token) if token else [WS_PROTOCOL]
    with (
        pytest.raises(WebSocketDenialResponse) as refused,
        client.websocket_connect("/ws/agent", subprotocols=offered),
    ):
        pass
    assert refused.value.status_code == status
