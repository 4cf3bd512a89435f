"""The one port picker: below the ephemeral and the NodePort ranges, one slice per xdist worker, never a
bound port."""

from __future__ import annotations

import socket

import pytest

from tests.support import ports


def test_ports_come_from_below_the_ephemeral_and_the_node_port_ranges() -> None:
    ephemeral = ports._ephemeral_start()
    picked = ports.free_ports(50)
    assert all(20000 <= port < ephemeral for port in picked), picked
    assert not [port for port in picked if port in ports.NODE_PORT_RANGE], picked
    assert max(ports._slice()) < 30000, "the whole range, not only these 50, stays below NodePorts"
    assert len(set(picked)) == 50


@pytest.mark.parametrize("workers", [1, 2, 4, 7])
def test_each_xdist_worker_has_its_own_slice(monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(workers))
    slices = []
    for index in range(workers):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{index}")
        slices.append(set(ports._slice()))
    for index, own in enumerate(slices):
        assert len(own) > 500
        for other in slices[index + 1 :]:
            assert not own & other


def test_a_port_something_listens_on_is_never_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port = int(held.getsockname()[1])
        held.listen()
        # A one-port slice holding only the bound port: the picker must refuse it, not return it.
        monkeypatch.setattr(ports, "_slice", lambda: range(port, port + 1))
        monkeypatch.setattr(ports, "_cursor", None)
        with pytest.raises(RuntimeError, match="no free port"):
            ports.free_port()


def test_a_port_comes_back_only_after_the_whole_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "_slice", lambda: range(21000, 21003))
    monkeypatch.setattr(ports, "_bindable", lambda host, port: True)
    monkeypatch.setattr(ports, "_cursor", 1)
    assert [ports.free_port() for _ in range(4)] == [21001, 21002, 21000, 21001]
