"""Health probes with a deadline for the control-plane components.

Called by tests/harness/controlplane.py between starting one component and the next. Each probe also
watches the process, so a component that dies at startup fails fast with its log instead of timing out.
"""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from tests.harness.pki import CertPair
from tests.harness.processes import ProcessRecord, is_running, log_tail


class ComponentError(RuntimeError):
    """A component exited or never became healthy; the message carries the end of its log."""

    def __init__(self, record: ProcessRecord, what: str) -> None:
        super().__init__(f"{record.name} {what}; log {record.log} ends with:\n{log_tail(record)}")
        self.record = record
        self.port_clash = "address already in use" in log_tail(record, 200)


def client_context(ca: CertPair | None = None, client: CertPair | None = None) -> ssl.SSLContext:
    """TLS for a probe: verify against the test CA when given, else (self-signed KCM cert) do not."""
    if ca is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context(cafile=str(ca.cert))
    if client is not None:
        ctx.load_cert_chain(str(client.cert), str(client.key))
    return ctx


def http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_until_healthy(
    record: ProcessRecord, probe: Callable[[], bool], timeout: float, *, interval: float = 0.2
) -> None:
    """Poll `probe` until it is true; raise ComponentError if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if not is_running(record):
            raise ComponentError(record, "exited during startup")
        if probe():
            return
        if time.monotonic() >= deadline:
            raise ComponentError(record, f"was not healthy after {timeout:.0f}s")
        time.sleep(interval)
