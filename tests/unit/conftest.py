"""The unit tier opens no network sockets: a test that binds or connects one belongs in integration/.

Enforced, not hoped for: binding or connecting an IPv4/IPv6 socket fails the test with a message
naming the rule. (Unix sockets stay allowed: asyncio's event loop uses a socketpair internally.)
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tests.support.history_events import store  # noqa: F401 (a HistoryStore on a temporary file)

_INET = (socket.AF_INET, socket.AF_INET6)


class NetworkInUnitTest(AssertionError):
    """A unit test touched the network."""


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(original: Any) -> Any:
        def guarded(self: socket.socket, *args: Any, **kwargs: Any) -> Any:
            if self.family in _INET:
                where = f"{original.__name__}{args[:1]}"
                raise NetworkInUnitTest(
                    f"unit tests open no sockets ({where}): move the test to integration/"
                )
            return original(self, *args, **kwargs)

        return guarded

    for name in ("bind", "connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, refuse(getattr(socket.socket, name)))
