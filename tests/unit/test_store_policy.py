"""The store's policy facts have one home (`store_policy`): no other runtime file spells them out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import actormesh_runtime
from actormesh_runtime import store_policy
from actormesh_runtime.llm.prompts import STORE_POLICIES
from actormesh_runtime.mocks.data import build_dataset
from actormesh_runtime.replies import templates
from tests.support.envelopes import make_envelope

RUNTIME = Path(actormesh_runtime.__file__).parent
HOME = Path(store_policy.__file__)
# A number of days, dollars or years written next to the words that make it a policy statement.
SECOND_HOME = re.compile(
    rf"\b{store_policy.RETURN_WINDOW_DAYS}[- ]days?\b|\${store_policy.FREE_SHIPPING_OVER}\b"
    rf"|\b{store_policy.WARRANTY_YEARS}[- ]year\b|\bdays\s*=\s*{store_policy.RETURN_WINDOW_DAYS}\b",
    re.IGNORECASE,
)


def runtime_sources() -> list[Path]:
    return sorted(p for p in RUNTIME.rglob("*") if p.suffix in {".py", ".html", ".js"} and p != HOME)


@pytest.mark.parametrize("path", runtime_sources(), ids=lambda p: str(p.relative_to(RUNTIME)))
def test_no_policy_fact_is_written_out_outside_store_policy(path: Path) -> None:
    hits = [
        f"{path.name}:{n}: {line.strip()}"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if SECOND_HOME.search(line)
    ]
    assert hits == []


def test_the_prompt_and_the_replies_state_the_same_window() -> None:
    assert f"{store_policy.RETURN_WINDOW_DAYS} days" in STORE_POLICIES
    assert f"${store_policy.FREE_SHIPPING_OVER}" in STORE_POLICIES
    envelope = make_envelope("What is your return policy?")
    assert store_policy.RETURNS_SENTENCE in templates.compose(envelope)


def test_the_mock_data_has_orders_on_both_sides_of_the_window() -> None:
    # The demo (and the tests built on it) needs a returnable and a too-old delivered order.
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    ages = [
        (now - datetime.fromisoformat(o.delivered_at)).days
        for o in build_dataset(now).orders.values()
        if o.status == "delivered" and o.delivered_at
    ]
    assert any(a <= store_policy.RETURN_WINDOW_DAYS for a in ages)
    assert any(a > store_policy.RETURN_WINDOW_DAYS for a in ages)
