"""`server_has_seen`: a flush that waits for what the connection queued before it.

nats-py's `flush()` writes its PING straight to the socket, while a SUB or PUB made just before waits
in the client's buffer for its flusher task: the PONG can come back before the server has read them.
On one connection that is harmless (the server still reads them before anything sent later), but a
test that subscribes on one connection and publishes on another, or that asserts "no error came back",
needs the server to have processed them. Seen in CI: a direct hop published right after the receiver's
subscribe-and-flush reached the server before the SUB, and was never delivered.
"""

from __future__ import annotations

from nats.aio.client import Client as NATS


async def server_has_seen(nc: NATS, timeout_s: int = 10) -> None:
    """Return once the server has processed everything `nc` sent or queued before this call."""
    # The first round trip lets the flusher task write the queued commands: its wake-up is already
    # scheduled, so it runs before this PONG can be read (unless it is waiting for a full socket
    # buffer to drain, which no test fills). The second PING then follows them on the wire, and the
    # server answers it only after it has processed them.
    await nc.flush(timeout=timeout_s)
    await nc.flush(timeout=timeout_s)
