"""Reading a client's WebSocket text frame as JSON (`WS /ws` and `WS /ws/agent`).

The standard library's parser recurses once per nesting level, and deep nesting raises
`RecursionError`, not `JSONDecodeError`: a 50 kB frame of `[` is enough. `RecursionError` is a
`RuntimeError`, which is how Starlette reports a receive on a closed socket, so the sockets' receive
loops took it for the client leaving: the socket closed without a word and the chats in flight on it
were cancelled. Here it is one more malformed frame.
"""

from __future__ import annotations

import json
from typing import Any


class MalformedFrame(ValueError):
    """The frame is not JSON; the message says why, for the client."""


def parse_frame(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedFrame(f"malformed JSON: {exc.msg}") from None
    except RecursionError:
        raise MalformedFrame("malformed JSON: nested too deeply") from None
