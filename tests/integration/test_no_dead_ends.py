"""No dead ends (issue 12, item 5) through the real stack: a gateway on uvicorn, the nine actors and
the mock APIs (LocalMesh), the history service, all on a real nats-server.

- a created return label's link reaches the customer in the final reply;
- an item named without an order id resolves to the customer's one order that has it, and items of
  several orders get a question, never an action on another order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway import JOHN, gateway_stack, stack_settings

pytestmark = pytest.mark.integration


async def _chat(client: httpx.AsyncClient, session: str, text: str) -> dict[str, Any]:
    response = await client.post(
        "/api/chat", json={"message": text, "customer_email": JOHN, "session_id": session}
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert "error" not in result["flags"], result
    return result


def _labels(records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records.values() if r["kind"] == "return_label"]


async def test_return_label_link_reaches_the_customer(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path)
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        result = await _chat(client, "s-label", "I want to return ORD-10001")

        [label] = _labels(stack.mesh.mocks.state.records)  # what the returns API created and answered
        assert label["order_id"] == "ORD-10001"
        assert [(a["type"], a["status"]) for a in result["actions"]] == [("create_return_label", "done")]
        assert f" {label['label_url']} " in result["response"], result["response"]


async def test_items_resolve_to_the_customers_order_or_a_question(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path)
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        # No order id, no "order"/"tracking": the headphones are in exactly one of John's orders.
        status = await _chat(client, "s-items-1", "Where are my headphones?")
        for part in ("ORD-10001", "TRK100000001"):
            assert part in status["response"], status["response"]
        assert "ORD-10002" not in status["response"]

        # Items of two orders, neither returnable: ask which, and create no label for a third order.
        ask = await _chat(client, "s-items-2", "I would like to return my laptop stand and my notebook set")
        assert "needs_clarification" in ask["flags"], ask
        assert "Which order do you mean?" in ask["response"]
        assert "ORD-10002" in ask["response"]
        assert "ORD-10003" in ask["response"]
        assert "ORD-10001" not in ask["response"]
        assert _labels(stack.mesh.mocks.state.records) == []
        assert stack.mesh.mocks.state.effects == 0
