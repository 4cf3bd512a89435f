"""Listening sockets for the runtime's HTTP servers (gateway, mock APIs); server URLs for messages; a
server's `Retry-After` in seconds (the commerce client and the LLM client read it).

Why this exists: asyncio turns on TCP_NODELAY for accepted connections only when the listening
socket was created with `proto=IPPROTO_TCP`; a plain `socket(AF_INET, SOCK_STREAM)` has proto 0, so
every keep-alive request after the first waited ~40 ms for Nagle + delayed ACK (measured by
`make bench`: mock API calls 44 ms → 0.8 ms, gateway requests 44 ms → 0.5 ms).
"""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def without_credentials(url: str) -> str:
    """`url` (one or several, comma-separated) without any `user:password@`, for messages and logs."""
    return re.sub(r"//[^@/,]*@", "//", url)


def bind_tcp(host: str, port: int) -> socket.socket:
    """A bound TCP socket on host:port (0 = any free port). OSError (address in use) is the caller's."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
