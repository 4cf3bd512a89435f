"""The store's policies, stated once: the return window, free shipping, the warranty, cancellable states.

Every rule and every sentence about them is built from these values: the order policy
(`policy.orders`), the reply facts and templates (`replies`), the guardrail that rejects drafts
contradicting them, the LLM prompt (`llm.prompts`) and the mock commerce APIs (`mocks`). Changing a
value here changes all of them; a test fails if a literal copy appears elsewhere.
"""

from __future__ import annotations

from datetime import timedelta

RETURN_WINDOW_DAYS = 30
"""Returns are accepted up to this many days after delivery (the last day included)."""
RETURN_WINDOW = timedelta(days=RETURN_WINDOW_DAYS)
FREE_SHIPPING_OVER = 50
"""Dollars: orders over this ship free."""
WARRANTY_YEARS = 1
"""Electronics warranty."""
WARRANTY_MONTHS = WARRANTY_YEARS * 12
CANCELLABLE_STATUSES: frozenset[str] = frozenset({"pending", "confirmed", "processing"})
"""Order states before shipping: the only ones in which an order can be cancelled."""

RETURNS_SENTENCE = f"Returns are accepted within {RETURN_WINDOW_DAYS} days of delivery."
SHIPPING_SENTENCE = f"Shipping is free on orders over ${FREE_SHIPPING_OVER}."
WARRANTY_SENTENCE = f"Electronics come with a {WARRANTY_YEARS}-year warranty."
RETURN_WITHIN = f"within {RETURN_WINDOW_DAYS} days of delivery"
"""For sentences such as "you can return it within N days of delivery"."""
