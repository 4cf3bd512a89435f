"""The e2e suite's LLM: the OpenAI-compatible test server, served on the sealed node's own address.

Used by the `llm` and `llm_demo` fixtures (tests/e2e/conftest.py): a mesh whose `spec.llm.apiBase` is
this server, reached from pods through the node address (198.18.255.1, harness-made), and whose
`egressExcept` leaves exactly that one address open. The LLM actors' `allow-llm` policy then admits one
address on one port, so the egress matrix can check both halves: the endpoint reached, everything else
on that port refused.
"""

from __future__ import annotations

import json
import re
from ipaddress import IPv4Network, ip_network
from typing import Any

from tests.support.llm_server import Reply

MODEL = "openai/test-model"
# Above the LLM call a test holds open, below the runtime's per-message budget (processing_timeout_s,
# 20 s), so a held call ends with the LLM's answer, not a timeout.
TIMEOUT_S = 18
SEALED_RANGE = "198.18.0.0/15"
_ORDER_ID = re.compile(r"ORD-\d{5}")
_TEMPLATE = re.compile(r"A correct but plain reply, for reference:\n(.*?)(?:\n\n|\Z)", re.S)


def reply_for(body: dict[str, Any]) -> Reply:
    """What a well-behaved model would say: the intent as JSON, or the reference reply as the draft."""
    system = str(body["messages"][0]["content"])
    user = str(body["messages"][-1]["content"])
    if system.startswith("You classify"):
        orders = sorted(set(_ORDER_ID.findall(user)))
        intent = "order_status" if orders else "general_question"
        return Reply(json.dumps({"intent": intent, "confidence": 0.97, "order_ids": orders}))
    found = _TEMPLATE.search(user)
    return Reply(found.group(1).strip() if found else "Thanks for reaching out; a colleague will follow up.")


def is_intent_call(body: dict[str, Any], marker: str) -> bool:
    """An intent-analyzer call about the customer message carrying `marker`."""
    messages = body["messages"]
    return str(messages[0]["content"]).startswith("You classify") and marker in str(messages[-1]["content"])


def egress_except_all_but(address: str, defaults: list[str]) -> list[str]:
    """`defaults` with the sealed range replaced by every part of it except `address`/32."""
    sealed = ip_network(SEALED_RANGE)
    assert isinstance(sealed, IPv4Network)
    rest = sorted(sealed.address_exclude(ip_network(f"{address}/32")))  # type: ignore[arg-type]
    return [c for c in defaults if c != SEALED_RANGE] + [str(n) for n in rest]
