"""NATS token authentication with the runtime's own connect (NATS_TOKEN, from a Secret in Kubernetes:
`spec.nats.external.tokenSecretRef`), on a real nats-server started with `--auth`. The token never has
to be in NATS_URL, which the operator writes into a ConfigMap."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from actormesh_runtime.bus.connection import connect
from actormesh_runtime.settings import RuntimeSettings
from tests.support.nats import nats_server_with

pytestmark = pytest.mark.integration

TOKEN = "s3cr3t-token-of-the-bus"


@pytest.fixture
def token_nats(tmp_path: Path) -> Iterator[str]:
    with nats_server_with(tmp_path, "--auth", TOKEN) as port:
        yield f"nats://127.0.0.1:{port}"


async def test_the_runtime_connects_with_the_token_from_its_own_variable(
    token_nats: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NATS_URL", token_nats)
    monkeypatch.setenv("NATS_TOKEN", TOKEN)
    settings = RuntimeSettings()
    nc = await connect(settings, name="token-test", reconnect=False)
    try:
        got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def on_msg(msg: object) -> None:
            got.set_result(msg.data)  # type: ignore[attr-defined]

        await nc.subscribe("token.check", cb=on_msg)
        await nc.publish("token.check", b"with a token")
        assert await asyncio.wait_for(got, timeout=5) == b"with a token"
    finally:
        await nc.close()


@pytest.mark.parametrize("token", [None, "not-the-token"], ids=["none", "wrong"])
async def test_without_the_right_token_the_server_refuses(token_nats: str, token: str | None) -> None:
    settings = RuntimeSettings(nats_url=token_nats, nats_token=token)
    with pytest.raises(Exception):  # noqa: B017 - the server closes with an auth error; nats-py's type varies
        await asyncio.wait_for(connect(settings, name="token-test", reconnect=False), timeout=20)


def test_a_token_and_a_user_together_are_refused() -> None:
    with pytest.raises(ValueError, match="NATS_TOKEN excludes NATS_USER and NATS_PASSWORD"):
        RuntimeSettings(nats_user="u", nats_password="p", nats_token=TOKEN)
