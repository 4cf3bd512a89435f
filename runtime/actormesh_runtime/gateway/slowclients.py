"""How long and how much a client may take to send the gateway a request's headers (uvicorn bounds neither).

An ASGI app only sees a request once its headers are complete, so nothing in the app can stop a client
that connects and then sends its headers a byte at a time (or nothing at all), nor one that sends
megabytes of them: llhttp (httptools) has no size limit, and uvicorn keeps the URL and every header
of a request in memory until the head is complete. `slow_client_protocol(timeout_s, max_bytes)`
returns uvicorn's httptools protocol with two changes:

- A deadline (HEADER_READ_TIMEOUT_S): from the connection's first moment, and again from the first
  byte of each further request on it, the headers must be complete within `timeout_s` seconds, else
  the client gets `408` and the connection is closed.
- A size bound (MAX_HEADER_BYTES): the bytes of one request's head (request line and headers) are
  counted as they arrive, from the first byte after the previous request on the connection (so each
  request of a keep-alive connection has its own budget); once `max_bytes` have arrived without the
  head being complete, the client gets `431 Request Header Fields Too Large` — `414 URI Too Long` if
  the request line itself has not ended — and the connection is closed. Only what belongs to the
  head is counted: a read that completes the head and carries the body after it is fed in two parts.
  One imprecision: a pipelined request that begins in the same read as the end of the one before it
  is counted from the next read (at most one read, 256 KiB, more; it then gets 431, never 414).
  After either refusal the client's remaining bytes are read and dropped for `LINGER_S` (or until it
  closes) behind a half-close, so its kernel delivers the reply instead of a reset; if an earlier
  request on the connection is still being answered, the connection is just closed.
- The same bound on a chunked body's framing (MAX_HEADER_BYTES): llhttp hands the trailer fields after
  the last chunk to uvicorn as headers, which keeps each one whole in the parser and appends it to the
  request's header list, so megabytes of trailers were held like megabytes of headers. The bytes of a
  chunked body that are not body data (chunk-size lines with their extensions, the trailer section) are
  counted as they arrive, afresh after each piece of body data; once `max_bytes` of them have arrived
  in a row the client gets `431` — nothing if its response has begun, then the connection is just
  closed (after the half-close and linger when the response is complete). Counted per fed part of a
  read: a part that carries body data counts all its framing as following it, so the count errs high
  by at most one part's framing. In the part in which the head ends, the head's bytes (up to its
  blank line) are not framing and are not counted (a 63 KB head and 3 KB of trailers in one read
  were a 431).
  Chunk extensions are not kept (httptools asks llhttp for no extension callbacks); they are counted
  because the count cannot tell them from trailers, and no size line has a use for 64 KiB.

Each refusal increments `actormesh_gateway_rejected_total{limit}` (`HEADER_READ_TIMEOUT_S`,
`MAX_HEADER_BYTES`, the framing's too). 0 turns either off; both 0 is uvicorn's own protocol ("auto").
Without httptools (a pure-Python install) this returns "auto" too and logs that there is no deadline;
the gateway server then bounds the head with h11's own limit (`h11_max_incomplete_event_size`: a `400`,
not `431`; h11 holds trailers and chunk-size lines to the same limit).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from actormesh_runtime.gateway.admission import REJECTED

log = logging.getLogger(__name__)

TIMEOUT_REPLY = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
HEADERS_TOO_LARGE_REPLY = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
)
URI_TOO_LONG_REPLY = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
LINGER_S = 2.0
"""After a 414/431, how long what the client still sends is read and dropped before the close."""
_HEAD_END = re.compile(rb"\n\r?\n")
"""The blank line that ends a head (llhttp takes a bare LF for a line end too)."""


def _head_share(tail: bytes, piece: bytes) -> int:
    """How many bytes of `piece`, the part of a read in which a head ended, are the head's: up to its
    blank line, found with the head's last bytes before the part (`tail`). 0 if not found (the count
    then errs high, never low)."""
    found = _HEAD_END.search(tail + piece)
    return max(0, found.end() - len(tail)) if found else 0


def slow_client_protocol(timeout_s: float, max_bytes: int) -> type[asyncio.Protocol] | str:
    """uvicorn's `http` protocol for the gateway: a header deadline of `timeout_s` seconds and a bound
    of `max_bytes` on each request's head (0: off)."""
    if not timeout_s and not max_bytes:
        return "auto"
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools missing: uvicorn's h11 protocol, without a header deadline
        if timeout_s:
            log.warning("HEADER_READ_TIMEOUT_S needs httptools (uvicorn[standard]); not enforced")
        return "auto"

    class SlowClientProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None
        _in_head = True
        """What arrives now belongs to a request's head (or precedes one): it is counted."""
        _head_bytes = 0
        _completed = 0
        """Requests whose message ended on this connection: a head that began since changes it."""
        _counting = False
        """While a counted part of a read is fed to the parser."""
        _line_open = False
        """The current request's line has begun in a counted part and has not ended yet."""
        _refused = False
        _linger: asyncio.TimerHandle | None = None
        _chunked = False
        """The current request's body is chunked: its framing is counted."""
        _framing_bytes = 0
        """Bytes of the chunked body's framing since its last body data (an upper bound: see above)."""
        _body_bytes = 0
        """Body data the parser has handed on, ever (the difference across a fed part is what matters)."""
        _head_tail = b""
        """The current head's last two bytes fed before the current part (its blank line may span two)."""

        # --- the deadline
        def _arm(self) -> None:
            if timeout_s and self._deadline is None:
                self._deadline = self.loop.call_later(timeout_s, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if not self.transport.is_closing() and not self._refused:
                REJECTED.labels("HEADER_READ_TIMEOUT_S").inc()
                self.transport.write(TIMEOUT_REPLY)
                self.transport.close()

        # --- the size bound
        def data_received(self, data: bytes) -> None:
            if self._refused:
                return  # lingering after a 414/431: read and dropped
            if not max_bytes:
                super().data_received(data)
                return
            while data:
                if not self._in_head and not self._chunked:  # a body of a declared length: fed whole
                    super().data_received(data)
                    return
                budget = max_bytes - (self._head_bytes if self._in_head else self._framing_bytes)
                piece, data = data[:budget], data[budget:]
                if not self._feed(piece):
                    return

        def _feed(self, piece: bytes) -> bool:
            """Feed one counted part of a read; False once the connection is refused or stopped."""
            in_head, completed, body_before = self._in_head, self._completed, self._body_bytes
            if in_head:
                self._head_bytes += len(piece)
            self._counting = in_head
            try:
                super().data_received(piece)
            finally:
                self._counting = False
            if self._stopped():
                return False
            if in_head and self._line_open and b"\n" in piece:
                self._line_open = False
            tail = self._head_tail
            if in_head:
                self._head_tail = (tail + piece)[-2:]
            if self._completed != completed:
                return True  # the message ended in this part: the next one's head is counted afresh
            if self._in_head:
                if self._head_bytes < max_bytes:
                    return True
                self._refuse(URI_TOO_LONG_REPLY if self._line_open else HEADERS_TOO_LARGE_REPLY)
                return False
            if not self._chunked:
                return True
            body = self._body_bytes - body_before
            if in_head:  # the head ended in this part: what follows it is the framing so far
                self._framing_bytes = len(piece) - body - _head_share(tail, piece)
            elif body:
                self._framing_bytes = len(piece) - body
            else:
                self._framing_bytes += len(piece)
            if self._framing_bytes < max_bytes:
                return True
            self._refuse_framing()
            return False

        def _stopped(self) -> bool:
            """The connection is closing, was handed to the WebSocket protocol, or the parser stopped
            at an upgrade (uvicorn then drops the rest of the read too)."""
            return (
                self.transport.is_closing()
                or self.transport.get_protocol() is not self
                or self.parser.should_upgrade()
            )

        def _refuse(self, reply: bytes) -> None:
            self._refused = True
            self._disarm()
            REJECTED.labels("MAX_HEADER_BYTES").inc()
            if self.cycle is not None and not self.cycle.response_complete:
                self.transport.close()  # a reply now would cut into the earlier request's response
            else:
                self._close_after(reply)

        def _refuse_framing(self) -> None:
            """The current request's chunked framing is over the bound: its app reads a disconnect
            (and whatever it sends goes nowhere), the client gets a 431 if no response has begun."""
            self._refused = True
            REJECTED.labels("MAX_HEADER_BYTES").inc()
            cycle = self.cycle
            cycle.disconnected = True
            cycle.message_event.set()
            if self.pipeline or (cycle.response_started and not cycle.response_complete):
                self.transport.close()  # a response is on the wire (or an earlier one is due first)
            else:
                self._close_after(b"" if cycle.response_started else HEADERS_TOO_LARGE_REPLY)

        def _close_after(self, reply: bytes) -> None:
            """Send `reply`, half-close, and drop what the client still sends for LINGER_S: its kernel
            then delivers the reply instead of a reset."""
            self.transport.write(reply)
            if self.transport.can_write_eof():
                self.transport.write_eof()
                self._linger = self.loop.call_later(LINGER_S, self.transport.close)
            else:
                self.transport.close()

        # --- parser callbacks and connection events
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._line_open = self._counting  # else not counted from its first byte: never a 414
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            self._in_head = False
            # llhttp reads a body as chunked when chunked is its last transfer coding (else it is a
            # 400); any mention only makes the framing counted, which costs a plain body nothing.
            self._chunked = any(
                name == b"transfer-encoding" and b"chunked" in value.lower() for name, value in self.headers
            )
            self._framing_bytes = 0
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            self._body_bytes += len(body)
            super().on_body(body)

        def on_message_complete(self) -> None:
            # The next request's head begins with the next byte; what is left of this read is not
            # counted (a pipelined request), the next read is.
            self._in_head, self._head_bytes, self._counting, self._chunked = True, 0, False, False
            self._head_tail = b""
            self._completed += 1
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._linger is not None:
                self._linger.cancel()
                self._linger = None
            super().connection_lost(exc)

    return SlowClientProtocol
