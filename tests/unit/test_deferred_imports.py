"""nats-py loads without aiohttp until its WebSocket transport is really used (`deferred_imports`).

Each check runs in a fresh interpreter: this one has imported everything already.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_nats_client_loads_without_aiohttp() -> None:
    out = _run("""
        import sys
        import actormesh_runtime.bus.connection
        import nats.aio.client
        print("aiohttp" in sys.modules)
    """)
    assert out == "False"


def test_the_websocket_transport_still_finds_the_real_aiohttp() -> None:
    out = _run("""
        import sys
        import actormesh_runtime
        import nats.aio.transport as transport
        session = transport.aiohttp.ClientSession
        print(session.__module__, type(sys.modules["aiohttp"]).__name__)
    """)
    assert out == "aiohttp.client module"


def test_other_importers_get_the_real_module() -> None:
    out = _run("""
        import actormesh_runtime
        import nats.aio.client
        import aiohttp
        print(aiohttp.ClientSession.__module__)
    """)
    assert out == "aiohttp.client"
