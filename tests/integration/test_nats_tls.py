"""NATS over mutual TLS with the runtime's own connect (NATS_TLS_CA / NATS_TLS_CERT / NATS_TLS_KEY), on a
real nats-server that requires and verifies client certificates (test PKI from tests/harness/pki.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from actormesh_runtime.bus.connection import connect
from actormesh_runtime.settings import RuntimeSettings
from tests.harness.pki import Pki, generate_pki
from tests.support.nats import nats_server_with

pytestmark = pytest.mark.integration


@pytest.fixture
def tls_nats(tmp_path: Path) -> Iterator[tuple[str, Pki]]:
    pki = generate_pki(tmp_path / "pki")
    verified = ["--tls", "--tlsverify", "--tlscert", str(pki.apiserver.cert),
                "--tlskey", str(pki.apiserver.key), "--tlscacert", str(pki.ca.cert)]  # fmt: skip
    with nats_server_with(tmp_path, *verified) as port:
        yield f"tls://127.0.0.1:{port}", pki


async def test_runtime_connects_with_a_client_certificate_and_only_with_one(
    tls_nats: tuple[str, Pki],
) -> None:
    url, pki = tls_nats
    settings = RuntimeSettings(
        nats_url=url,
        nats_tls_ca=str(pki.ca.cert),
        nats_tls_cert=str(pki.admin.cert),
        nats_tls_key=str(pki.admin.key),
    )
    nc = await connect(settings, name="tls-test")
    try:
        got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def on_msg(msg: object) -> None:
            got.set_result(msg.data)  # type: ignore[attr-defined]

        await nc.subscribe("tls.check", cb=on_msg)
        await nc.publish("tls.check", b"over tls")
        assert await asyncio.wait_for(got, timeout=5) == b"over tls"
    finally:
        await nc.close()

    without_cert = settings.model_copy(update={"nats_tls_cert": None, "nats_tls_key": None})
    with pytest.raises(Exception):  # noqa: B017 - the server drops the handshake; nats-py's type varies
        await asyncio.wait_for(_connect_once(without_cert), timeout=10)


async def _connect_once(settings: RuntimeSettings) -> None:
    """The runtime's connect reconnects forever; one failed handshake is enough here."""
    import nats

    from actormesh_runtime.bus.connection import credentials

    nc = await nats.connect(
        settings.nats_url,
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=3,
        **credentials(settings),
    )
    await nc.close()
