"""Per-socket limits of `WS /ws`: frames per minute, and closing a socket nobody uses.

- `WS_MESSAGES_PER_MINUTE`: every frame a client sends takes a token from the socket's bucket
  (a minute's worth may come at once, then that rate); a frame without a token is answered with an
  `error` frame (status 429, `limit`, `retry_after_s`) and otherwise ignored — the socket stays open.
- `WS_IDLE_TIMEOUT_S`: a socket that has sent nothing for that long and has no chat in flight is
  closed with code 4408 ("idle timeout"); a chat still waiting for its answer keeps it open.
- `WS_MAX_FRAME_BYTES` is enforced by the server's WebSocket protocol (close 1009 before the frame is
  read, `GatewayServer`); the app only learns of it from the disconnect's code, and counts it here.
Each refusal and each idle close is counted in `actormesh_gateway_rejected_total{limit}`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import Message

from actormesh_runtime.gateway.admission import REJECTED
from actormesh_runtime.gateway.ratelimit import LocalBuckets

IDLE_CLOSE_CODE = 4408
TOO_BIG_CLOSE_CODE = 1009
"""RFC 6455 "message too big": the server closed the socket on a frame over WS_MAX_FRAME_BYTES."""


class SocketLimits:
    def __init__(
        self, per_minute: int, idle_timeout_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_minute = per_minute
        self.idle_timeout_s = idle_timeout_s
        self._bucket = LocalBuckets(float(per_minute), per_minute / 60.0, clock) if per_minute else None

    def refusal(self) -> dict[str, Any] | None:
        """None when the frame may be handled, else the `error` frame's data."""
        if self._bucket is None:
            return None
        wait = self._bucket.take("socket")
        if wait <= 0:
            return None
        REJECTED.labels("WS_MESSAGES_PER_MINUTE").inc()
        return {
            "message": f"more than {self.per_minute} frames per minute on this socket; frame ignored",
            "status": 429,
            "limit": "WS_MESSAGES_PER_MINUTE",
            "retry_after_s": round(wait, 2),
        }

    async def next_frame(
        self, receive: Callable[[], Awaitable[Message]], busy: Callable[[], bool]
    ) -> Message | None:
        """The next frame, or None when the socket has been idle too long (and nothing is in flight)."""
        frame = await self._next(receive, busy)
        if (
            frame is not None
            and frame["type"] == "websocket.disconnect"
            and frame.get("code") == TOO_BIG_CLOSE_CODE
        ):
            REJECTED.labels("WS_MAX_FRAME_BYTES").inc()
        return frame

    async def _next(
        self, receive: Callable[[], Awaitable[Message]], busy: Callable[[], bool]
    ) -> Message | None:
        if not self.idle_timeout_s:
            return await receive()
        pending = asyncio.ensure_future(receive())
        try:
            while True:
                done, _ = await asyncio.wait({pending}, timeout=self.idle_timeout_s)
                if done:
                    return pending.result()
                if not busy():
                    REJECTED.labels("WS_IDLE_TIMEOUT_S").inc()
                    return None
        finally:
            if not pending.done():
                pending.cancel()
