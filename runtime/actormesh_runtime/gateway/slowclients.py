"""A header-read deadline for the gateway's HTTP connections (uvicorn has none of its own).

An ASGI app only sees a request once its headers are complete, so a client that connects and then
sends its headers a byte at a time (or nothing at all) holds a connection forever without the app
ever knowing. `header_deadline_protocol(t)` returns uvicorn's httptools protocol with one change:
from the connection's first moment, and again from the first byte of each further request on it,
the headers must be complete within `t` seconds, else the client gets `408` and the connection is
closed. Without httptools (a pure-Python install) it returns uvicorn's default and logs that.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from actormesh_runtime.gateway.admission import REJECTED

log = logging.getLogger(__name__)

TIMEOUT_REPLY = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def header_deadline_protocol(timeout_s: float) -> type[asyncio.Protocol] | str:
    if not timeout_s:
        return "auto"
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools missing: uvicorn's h11 protocol, without a header deadline
        log.warning("HEADER_READ_TIMEOUT_S needs httptools (uvicorn[standard]); not enforced")
        return "auto"

    class HeaderDeadlineProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            if self._deadline is None:
                self._deadline = self.loop.call_later(timeout_s, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                REJECTED.labels("HEADER_READ_TIMEOUT_S").inc()
                self.transport.write(TIMEOUT_REPLY)
                self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderDeadlineProtocol
