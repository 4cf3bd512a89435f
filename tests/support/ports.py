"""Ports for the servers that tests, the soak and the benches start: one picker for all of them.

Asking the kernel for port 0 and closing the socket hands out a port from the *ephemeral* range — the
same range every outgoing connection on the machine takes its local port from. Under `pytest -n`,
with hundreds of client connections a second, one of them can take that port before our server binds
it (CI saw `address already in use` for an actor's health port this way). So ports are picked below
the ephemeral range, where only listeners that ask for a number live, each xdist worker from its own
slice, round-robin from a random start (a port handed out is not handed out again until the whole slice
has been), and only if a bind shows it free right now.

And below Kubernetes' NodePort range (30000-32767): kube-router exempts a node's own addresses on those
ports from NetworkPolicies, so the e2e LLM server, listening on the node address, was reachable from
every actor whenever its port landed there (2,768 of the 12,768 ports above 20000: about one e2e run in
five; test_mesh_egress caught it once).
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

_LOWEST = 20000
_FALLBACK_EPHEMERAL_START = 32768
NODE_PORT_RANGE = range(30000, 32768)
_lock = threading.Lock()
_cursor: int | None = None  # walks the slice round-robin, so a port comes back only after all the others


@functools.cache  # a kernel setting: read once per process, not once per port
def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _FALLBACK_EPHEMERAL_START


def _slice() -> range:
    """This process's share of the range: the xdist worker's slice, or all of it outside pytest -n."""
    top = max(min(_ephemeral_start(), NODE_PORT_RANGE.start), _LOWEST + 1000)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if not worker.startswith("gw") or workers < 1:
        return range(_LOWEST, top)
    index = int(worker[2:]) % workers
    width = (top - _LOWEST) // workers
    return range(_LOWEST + index * width, _LOWEST + (index + 1) * width)


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now and that this process has not handed out lately."""
    global _cursor
    ports = _slice()
    with _lock:
        if _cursor is None:
            _cursor = random.randrange(len(ports))
        for _ in range(len(ports)):
            port = ports[_cursor % len(ports)]
            _cursor += 1
            if _bindable(host, port):
                return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1} on {host}")


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    return [free_port(host) for _ in range(count)]


@contextlib.contextmanager
def silent_listener() -> Iterator[socket.socket]:
    """A TCP listener on loopback that accepts and never answers: a client of it (a NATS connect, an
    LLM call) waits, so a test can act while it is certainly still under way."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield listener
    finally:
        listener.close()
