"""`actormesh mocks` as a process: serves the three APIs on the given ports, exits cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest

pytestmark = pytest.mark.integration


def test_mocks_command_serves_and_stops_on_sigterm() -> None:
    command = [sys.executable, "-m", "actormesh_runtime.cli", "mocks"]
    ports = ["--customers-port", "0", "--orders-port", "0", "--tracking-port", "0"]
    process = subprocess.Popen([*command, *ports], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        urls = dict(process.stdout.readline().strip().split("=", 1) for _ in range(3))
        assert set(urls) == {"CUSTOMER_API_URL", "ORDERS_API_URL", "TRACKING_API_URL"}
        customer = httpx.get(
            f"{urls['CUSTOMER_API_URL']}/customers/by-email/bob.wilson@example.com", timeout=5
        )
        assert customer.json()["tier"] == "standard"
        shipment = httpx.get(f"{urls['TRACKING_API_URL']}/tracking/TRK100000003", timeout=5)
        assert shipment.json()["carrier"] == "USPS"
        orders = httpx.get(f"{urls['ORDERS_API_URL']}/orders", params={"customer_id": "CUST-1003"}, timeout=5)
        assert [o["order_id"] for o in orders.json()["orders"]] == ["ORD-30001"]

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
