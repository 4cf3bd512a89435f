"""How `actormesh ask` prints a result for a human."""

from __future__ import annotations

from actormesh_runtime.commands.ask import render
from actormesh_runtime.envelope import FinalResult


def test_render_puts_the_reply_first_then_what_the_mesh_did() -> None:
    result = FinalResult.model_validate(
        {
            "message_id": "msg-1", "session_id": "s", "response": "Your order is on its way.",
            "intent": "cancellation_request", "intent_confidence": 0.9,
            "sentiment": {"label": "negative", "score": -0.4}, "urgency": "high",
            "escalated": True, "reference_id": "ESC-0123abcd",
            "actions": [{"type": "cancel_order", "order_id": "ORD-20001", "status": "done",
                         "detail": "Cancelled."}],
            "flags": ["pii_redacted"], "method": {"intent": "rules", "response": "template"},
            "trace": [{"actor": "sentiment_analyzer", "ms": 1.25, "attempt": 1},
                      {"actor": "intent_analyzer", "ms": 2.0, "attempt": 2}],
            "processing_ms": 12.4,
        }
    )  # fmt: skip

    lines = render(result).splitlines()

    assert lines[0] == "Your order is on its way."
    assert "  intent     cancellation_request (0.90, rules)" in lines
    assert "  sentiment  negative (-0.40), urgency high" in lines
    assert "  escalated  yes, reference ESC-0123abcd" in lines
    assert "  action     cancel_order ORD-20001: done - Cancelled." in lines
    assert "  flags      pii_redacted" in lines
    assert "  trace      sentiment_analyzer 1.2ms > intent_analyzer 2.0ms (x2)" in lines
    assert lines[-1] == "  total      12 ms, message msg-1"
