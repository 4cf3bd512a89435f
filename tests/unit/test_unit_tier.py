"""The unit tier's own rule: a unit test that opens a network socket fails (tests/unit/conftest.py)."""

from __future__ import annotations

import socket

import pytest

from tests.unit.conftest import NetworkInUnitTest


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
def test_binding_a_socket_fails_the_test(family: socket.AddressFamily) -> None:
    with pytest.raises(NetworkInUnitTest, match="move the test"), socket.socket(family) as sock:
        sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))


def test_connecting_fails_too() -> None:
    with pytest.raises(NetworkInUnitTest), socket.socket() as sock:
        sock.connect(("127.0.0.1", 9))
