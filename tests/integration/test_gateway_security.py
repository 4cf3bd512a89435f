"""Secure by default, against a real gateway (uvicorn on a random port, real nats-server, the nine actors):

- a gateway with neither JWT_SECRET nor GATEWAY_ANONYMOUS=true, or with a short key, does not start,
  and says which variables to set without echoing a key; `actormesh dev` on a non-loopback host
  refuses anonymous mode unless asked;
- key rotation (JWT_PREVIOUS_SECRET), `iss` and `aud` checks on crafted tokens;
- WebSockets: the token offered in `Sec-WebSocket-Protocol` (the query string still works and is never
  logged), a 1 MB frame refused by the server, chats in flight capped per socket and per customer, and
  the socket closed when its token expires.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from actormesh_runtime.catalog import ActorName
from actormesh_runtime.gateway.auth import mint_token
from tests.support.gateway import JANE, JOHN, gateway_stack, slow_factory, stack_settings
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

ACTORMESH = [sys.executable, "-m", "actormesh_runtime.cli"]
KEY = "current-key-0123456789abcdef-0123456789"
OLD_KEY = "previous-key-0123456789abcdef-012345678"
OTHER_KEY = "somebody-elses-key-0123456789abcdef-0123"
ISSUER, AUDIENCE = "https://shop.example", "actormesh-gateway"
WS_PROTOCOL, WS_BEARER_PREFIX = "actormesh.v1", "actormesh.bearer."  # the wire contract (the widget uses it)
WHERE = "Where is my order ORD-10002?"


def _env(**extra: str) -> dict[str, str]:
    drop = {"JWT_SECRET", "JWT_PREVIOUS_SECRET", "GATEWAY_ANONYMOUS", "JWT_ISSUER", "JWT_AUDIENCE"}
    return {k: v for k, v in os.environ.items() if k not in drop} | extra


@pytest.mark.parametrize(
    ("env", "needles"),
    [
        pytest.param({}, ["JWT_SECRET", "GATEWAY_ANONYMOUS=true"], id="nothing-set"),
        pytest.param(
            {"JWT_SECRET": "twenty-one-byte-key!!"}, ["JWT_SECRET", "21 bytes", "32"], id="short-key"
        ),
        pytest.param({"JWT_PREVIOUS_SECRET": OLD_KEY}, ["JWT_PREVIOUS_SECRET", "JWT_SECRET"], id="only-old"),
    ],
)
def test_gateway_refuses_to_start_without_a_usable_key(env: dict[str, str], needles: list[str]) -> None:
    port = free_port()
    done = subprocess.run(
        [*ACTORMESH, "gateway", "--port", str(port), "--nats-url", "nats://127.0.0.1:1"],
        capture_output=True, text=True, timeout=60, env=_env(**env),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    for needle in needles:
        assert needle in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    for value in env.values():
        assert value not in done.stderr + done.stdout, "a key was echoed"


def test_dev_refuses_anonymous_on_a_reachable_host_unless_asked(tmp_path: Path) -> None:
    done = subprocess.run(
        [*ACTORMESH, "dev", "--host", "0.0.0.0", "--port", str(free_port()), "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, env=_env(),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "JWT_SECRET" in done.stderr
    assert "--anonymous" in done.stderr
    assert not (tmp_path / "nats").exists(), "nothing may start before the refusal"


def _token(key: str = KEY, email: str = JOHN, **claims: Any) -> str:
    return mint_token(key, email, issuer=claims.get("iss", ISSUER), audience=claims.get("aud", AUDIENCE))


async def test_rotation_issuer_and_audience(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(
        nats_server,
        tmp_path,
        jwt_secret=KEY,
        jwt_previous_secret=OLD_KEY,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        gateway_anonymous=False,
    )
    body = {"message": WHERE, "customer_email": JOHN}
    async with gateway_stack(settings) as stack, httpx.AsyncClient(timeout=60) as client:
        refused = {
            "no token": None,
            "another key": _token(OTHER_KEY),
            "no iss": mint_token(KEY, JOHN, audience=AUDIENCE),
            "wrong iss": _token(iss="https://evil.example"),
            "no aud": mint_token(KEY, JOHN, issuer=ISSUER),
            "wrong aud": _token(aud="someone-else"),
        }
        for why, token in refused.items():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = await client.post(f"{stack.url}/api/chat", json=body, headers=headers)
            assert response.status_code == 401, (why, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
        for why, token in {"current key": _token(KEY), "previous key": _token(OLD_KEY)}.items():
            response = await client.post(
                f"{stack.url}/api/chat", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 200, (why, response.text)
            assert "TRK100000002" in response.json()["response"]


def ws_url(http_url: str, query: str = "") -> str:
    return http_url.replace("http://", "ws://") + "/ws" + (f"?{query}" if query else "")


async def recv(ws: ClientConnection, timeout_s: float = 30.0) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout=timeout_s))
    return frame


async def next_of(ws: ClientConnection, kinds: set[str], timeout_s: float = 30.0) -> dict[str, Any]:
    """The next frame of one of `kinds`, skipping progress frames."""
    while True:
        frame = await recv(ws, timeout_s)
        if frame["type"] in kinds:
            return frame


def chat_frame(email: str = JOHN, message: str = WHERE) -> str:
    return json.dumps({"type": "chat", "data": {"message": message, "customer_email": email}})


@pytest.fixture
def captured_logs() -> Iterator[list[str]]:
    """Every log record of the server side of this process (not the test's own clients), with all its
    extras, at DEBUG."""
    lines: list[str] = []
    clients = ("websockets.client", "httpx", "httpcore")

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if not record.name.startswith(clients):
                lines.append(f"{record.name} {record.getMessage()} {record.__dict__}")

    root = logging.getLogger()
    handler, level = Keep(logging.DEBUG), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_ws_token_in_the_subprotocol_header_and_query_token_never_logged(
    nats_server: str, tmp_path: Path, captured_logs: list[str]
) -> None:
    settings = stack_settings(nats_server, tmp_path, jwt_secret=KEY, gateway_anonymous=False)
    async with gateway_stack(settings) as stack:
        token = mint_token(KEY, JANE)
        offered = [WS_PROTOCOL, WS_BEARER_PREFIX + token]
        async with connect(ws_url(stack.url), subprotocols=offered) as ws:  # type: ignore[arg-type]
            assert ws.subprotocol == WS_PROTOCOL, "the server selects the protocol, never the token"
            connected = await recv(ws)
            assert connected["data"]["customer_email"] == JANE
            await ws.send(chat_frame(JANE, "Where is my order ORD-20002?"))
            response = await next_of(ws, {"response", "error"}, timeout_s=60)
            assert response["type"] == "response", response
            assert "TRK200000001" in response["data"]["response"]

        bad = [WS_PROTOCOL, WS_BEARER_PREFIX + mint_token(OTHER_KEY, JANE)]
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(stack.url), subprotocols=bad):  # type: ignore[arg-type]
                pass
        assert refused.value.response.status_code == 401

        old_client_token = mint_token(KEY, JOHN)
        async with connect(ws_url(stack.url, f"token={old_client_token}")) as ws:
            assert (await recv(ws))["data"]["customer_email"] == JOHN
    assert captured_logs, "the capture saw nothing: the check below would be vacuous"
    leaked = [line for line in captured_logs if old_client_token in line or token in line]
    assert not leaked, leaked[:3]


async def test_ws_one_megabyte_frame_is_refused_by_the_server(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path)
    async with gateway_stack(settings, history=False) as stack:
        async with connect(ws_url(stack.url)) as ws:
            assert (await recv(ws))["type"] == "connected"
            await ws.send("x" * 1_000_000)
            with pytest.raises(ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1009, closed.value  # "message too big", from the server
        # A frame under the limit still gets the application's own answers.
        async with connect(ws_url(stack.url)) as ws:
            await recv(ws)
            await ws.send(json.dumps({"type": "ping", "pad": "y" * 60_000}))
            assert (await recv(ws))["type"] == "pong"


async def test_ws_chats_in_flight_are_capped_per_socket_and_per_customer(
    nats_server: str, tmp_path: Path
) -> None:
    settings = stack_settings(
        nats_server, tmp_path, ws_chats_per_socket=2, ws_chats_per_customer=3, request_timeout_s=20.0
    )
    slow = slow_factory(ActorName.CONTEXT_RETRIEVER, delay_s=2.0)
    async with (
        gateway_stack(settings, history=False, factory=slow) as stack,
        connect(ws_url(stack.url)) as first,
        connect(ws_url(stack.url)) as second,
        connect(ws_url(stack.url)) as other_customer,
    ):
        for ws in (first, second, other_customer):
            await recv(ws)
        for _ in range(3):
            await first.send(chat_frame())
        kinds = [(await next_of(first, {"accepted", "error"}))["data"] for _ in range(3)]
        refused = [k for k in kinds if "status" in k]
        assert len(refused) == 1, kinds
        assert refused[0]["status"] == 429
        assert "socket" in refused[0]["message"]

        await second.send(chat_frame())
        assert (await next_of(second, {"accepted", "error"}))["data"].get("status") is None
        await second.send(chat_frame())  # John's fourth chat in flight on this replica
        over = await next_of(second, {"accepted", "error"})
        assert over["type"] == "error", over
        assert over["data"]["status"] == 429
        assert "customer" in over["data"]["message"]

        await other_customer.send(chat_frame(JANE, "Where is my order ORD-20002?"))
        assert (await next_of(other_customer, {"accepted", "error"}))["type"] == "accepted"

        # Every accepted chat still ends with its response, and the slots come back afterwards.
        for _ in range(2):
            assert (await next_of(first, {"response", "error"}, timeout_s=60))["type"] == "response"
        assert (await next_of(second, {"response", "error"}, timeout_s=60))["type"] == "response"
        await second.send(chat_frame())
        assert (await next_of(second, {"accepted", "error"}))["type"] == "accepted"


async def test_ws_is_closed_when_its_token_expires(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path, jwt_secret=KEY, gateway_anonymous=False)
    async with gateway_stack(settings, history=False) as stack:
        token = mint_token(KEY, JOHN, ttl_s=3)
        offered = [WS_PROTOCOL, WS_BEARER_PREFIX + token]
        async with connect(ws_url(stack.url), subprotocols=offered) as ws:  # type: ignore[arg-type]
            assert (await recv(ws))["type"] == "connected"
            await ws.send(json.dumps({"type": "ping"}))
            assert (await recv(ws))["type"] == "pong"
            expired = await next_of(ws, {"error"}, timeout_s=30)
            assert expired["data"]["status"] == 401
            assert time.time() >= json.loads(_claims(token))["exp"]
            with pytest.raises(ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4401


def _claims(token: str) -> str:
    import base64

    payload = token.split(".")[1]
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
