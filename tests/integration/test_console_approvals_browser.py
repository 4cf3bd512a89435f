"""Approval requests decided in the agent console, in real headless Chromium, against a real mesh
(nine actors, the history service, two gateway replicas, a real nats-server, SQLite file and the mock
commerce APIs over HTTP):

- a standard-tier customer asks to cancel (pending_review) in the widget; the request appears in the
  console (another browser context, another replica) live; the agent opens it from the keyboard, sees
  the facts (order, total, tier, the customer's words, deadline) and approves; the customer's page is
  told; the order is cancelled once at the mock API, although a stale console approved it a second
  time (409 shown, and then the decision that won);
- a refund is approved for less than the order total (more than the total: the gateway's 422 shown,
  the typed amount kept) and issued once for that amount at the mock API;
- a denial needs a reason (422 shown); with one, the customer is told it and nothing is refunded;
- a console that missed events while its socket was down shows them after the reconnect;
- with JWT_SECRET (the second test) a customer's token gets the gateway's 403 on the page, and the
  decisions are made as the agent token's subject;
- every decision is in the request's audit trail (who, what, why), the execution's result too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actormesh_runtime.gateway.auth import mint_token
from tests.support.browser import (
    LIVE_MS,
    RefuseFirst,
    escalate_in_widget,
    launch_chromium,
    page_problems,
    require_browser,
    send_in_widget,
)
from tests.support.eventually import eventually_async
from tests.support.gateway import BOB, JOHN, gateway_stack, mock_state, stack_settings

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SECRET = "console-approvals-secret-with-enough-length-0123"
AGENT = "alex@shop.example"


async def ask_in_widget(page: Any, email: str, text: str) -> None:
    """Send `text` from the widget and wait for the mesh's reply saying a person will review it."""
    from playwright.async_api import expect

    await send_in_widget(page, email, text)
    outcome = page.locator(".msg.agent .outcome.pending_review").last
    await expect(outcome).to_be_visible(timeout=LIVE_MS)


async def request_in_console(agent: Any, order_id: str) -> tuple[Any, str]:
    """The pending request for `order_id` in the console's approvals list (waits for it), and its id."""
    from playwright.async_api import expect

    item = agent.locator("#approvals button.apr", has_text=order_id)
    await expect(item).to_be_visible(timeout=LIVE_MS)
    return item, str(await item.get_attribute("data-approval"))


async def test_an_agent_approves_a_cancellation_and_a_stale_console_cannot_repeat_it(
    nats_server: str, tmp_path: Path
) -> None:
    require_browser()
    from playwright.async_api import async_playwright, expect

    settings = stack_settings(nats_server, tmp_path)
    # Two replicas, as two gateway pods: the customer on one, the console on the other.
    async with gateway_stack(settings, replicas=2) as stack, async_playwright() as pw:
        customer_url, console_url = stack.urls
        browser = await launch_chromium(pw)
        try:
            agent_context = await browser.new_context()
            agent = await agent_context.new_page()
            problems = page_problems(agent)
            await agent.goto(f"{console_url}/console")
            await expect(agent.locator("#status")).to_have_attribute("data-state", "online", timeout=15_000)
            await expect(agent.locator("#approvals-empty")).to_be_visible()
            await agent.fill("#agent-name", "Alex")
            await agent.locator("#agent-name").dispatch_event("change")
            await agent.evaluate("window.__sameDocument = true")

            customer = await (await browser.new_context()).new_page()
            await customer.goto(f"{customer_url}/widget")
            # First handed to a person, then a cancellation in the same conversation: the escalation
            # will show the request's decision and audit trail too.
            ref = await escalate_in_widget(customer, BOB, "I want to talk to a human please")
            await ask_in_widget(customer, BOB, "Please cancel my order ORD-30001")

            # Live: the request shows up without a reload, with what the decision needs at a glance.
            item, approval_id = await request_in_console(agent, "ORD-30001")
            assert await agent.evaluate("window.__sameDocument === true"), "the console reloaded"
            await expect(item).to_contain_text("Cancel order ORD-30001")
            await expect(item).to_contain_text(f"{BOB} (standard)")
            await expect(item).to_contain_text("order total 149.00")
            await expect(item).to_contain_text("due in")
            before = await mock_state(stack)
            assert before["orders"]["ORD-30001"] == "pending"

            # A second console whose live socket never delivers: it will offer a stale Approve.
            stale = await agent_context.new_page()
            await stale.route_web_socket("**/ws/agent", lambda ws: None)
            await stale.goto(f"{console_url}/console#{approval_id}")
            await expect(stale.locator("#approval-state")).to_have_text("pending", timeout=15_000)

            # Keyboard: Tab from the approvals' state filter reaches the request; Enter opens it and
            # the request's heading takes the focus.
            await agent.focus("#approval-filter")
            await agent.keyboard.press("Tab")
            await expect(item).to_be_focused()
            await agent.keyboard.press("Enter")
            await expect(agent.locator("#approval-title")).to_have_text(approval_id)
            await expect(agent.locator("#approval-title")).to_be_focused()
            await expect(agent.locator("#escalation-panel")).to_be_hidden()
            summary = agent.locator("#approval-summary")
            await expect(summary).to_contain_text("Cancel order ORD-30001")
            await expect(summary).to_contain_text(f"{BOB} · standard tier")
            await expect(summary).to_contain_text("149.00")
            await expect(summary).to_contain_text("due in")
            await expect(summary).to_contain_text("Re-escalated")
            await expect(agent.locator("#approval-words")).to_have_text("Please cancel my order ORD-30001")
            await expect(agent.locator("#approval-order")).to_contain_text("Coffee Maker")
            await expect(agent.locator("#approval-transcript .turn.customer").last).to_contain_text(
                "cancel my order"
            )
            await expect(agent.locator("#amount-field")).to_be_hidden()  # a cancellation has no amount
            await expect(agent.locator("#approve")).to_have_text("Approve cancellation")

            await agent.focus("#approve")
            await agent.keyboard.press("Enter")
            await expect(agent.locator("#approval-state")).to_have_text("approved", timeout=15_000)
            await expect(agent.locator("#approval-title")).to_be_focused()
            await expect(agent.locator("#approval-controls")).to_be_hidden()
            await expect(summary).to_contain_text("approved by Alex")
            await expect(item).to_be_hidden()  # no longer pending
            # The execution's result arrives live (approval.updated) in the audit trail.
            audit = agent.locator("#approval-audit")
            await expect(audit).to_contain_text("executed", timeout=LIVE_MS)
            await expect(audit.locator("tbody tr").nth(1)).to_contain_text("Alex")

            # The customer's page is told, as a message from a person.
            person = customer.locator(".msg.person").last
            await expect(person).to_contain_text(
                "Your cancellation of ORD-30001 was approved: the order is cancelled.", timeout=LIVE_MS
            )
            await expect(person.locator(".agent-name")).to_have_text("Alex")
            # …and the console's transcript of the request shows what the customer was told.
            await expect(agent.locator("#approval-transcript .turn.person").last).to_contain_text(
                "was approved: the order is cancelled", timeout=15_000
            )

            # 409: the stale console still offers Approve; the gateway refuses, the page says who
            # decided and then shows that decision.
            await stale.fill("#agent-name", "Sam")
            await stale.click("#approve")
            await expect(stale.locator("#error")).to_contain_text("409", timeout=15_000)
            await expect(stale.locator("#error")).to_contain_text("Alex")
            await expect(stale.locator("#approval-state")).to_have_text("approved", timeout=15_000)
            await stale.close()

            async def executed_once() -> dict[str, Any] | None:
                state = await mock_state(stack)
                return state if state["orders"]["ORD-30001"] == "cancelled" else None

            after = await eventually_async(executed_once, what="ORD-30001 cancelled", timeout_s=30)

            # The escalation of the same conversation shows the request, its decision and audit trail.
            await agent.locator(f'#queue button[data-ref="{ref}"]').click()
            await expect(agent.locator("#detail-title")).to_have_text(ref)
            await expect(agent.locator("#approval-panel")).to_be_hidden()
            on_escalation = agent.locator("#esc-approvals")
            await expect(on_escalation).to_contain_text(f"{approval_id} · Cancel order ORD-30001 · approved")
            await expect(on_escalation.locator(".audit")).to_contain_text("Alex")
            await expect(on_escalation.locator(".audit")).to_contain_text("executed")
            # …and leads back to it.
            await on_escalation.get_by_role("link").first.click()
            await expect(agent.locator("#approval-title")).to_have_text(approval_id)
            assert problems == [], problems
        finally:
            await browser.close()
    # Counted at the mock API: one change (the cancellation), though approve was sent twice.
    assert after["effects"] == before["effects"] + 1


async def test_an_agent_refunds_less_than_the_total_and_denies_with_a_reason(
    nats_server: str, tmp_path: Path
) -> None:
    require_browser()
    from playwright.async_api import async_playwright, expect

    settings = stack_settings(nats_server, tmp_path, jwt_secret=SECRET)
    async with gateway_stack(settings) as stack, async_playwright() as pw:
        browser = await launch_chromium(pw)
        try:
            agent = await (await browser.new_context()).new_page()
            problems: list[str] = []
            agent.on("pageerror", lambda exc: problems.append(str(exc)))
            await agent.goto(f"{stack.url}/console")
            # A customer's token: the gateway refuses it, and the page says so.
            await agent.fill("#token", mint_token(SECRET, JOHN))
            await agent.press("#token", "Enter")
            await expect(agent.locator("#error")).to_contain_text("403", timeout=15_000)
            await agent.fill("#token", mint_token(SECRET, AGENT, role="agent"))
            await agent.press("#token", "Enter")
            await expect(agent.locator("#status")).to_have_attribute("data-state", "online", timeout=15_000)
            await expect(agent.locator("#approvals-error")).to_be_hidden()
            # A second console (same agent) whose live socket is held by the test: no event reaches it
            # until the socket drops; the reconnect's reload must bring what it missed.
            held: list[Any] = []
            late = await agent.context.new_page()
            await late.route_web_socket("**/ws/agent", lambda ws: held.append(ws))
            await late.goto(f"{stack.url}/console")
            await expect(late.locator("#approvals-empty")).to_be_visible(timeout=15_000)

            customer = await (await browser.new_context()).new_page()
            await customer.goto(f"{stack.url}/widget")
            await customer.fill("#token", mint_token(SECRET, JOHN))
            await customer.locator("#token").dispatch_event("change")
            await ask_in_widget(customer, JOHN, "I was charged twice for ORD-10001, I want a refund")
            item, refund_id = await request_in_console(agent, "ORD-10001")
            await expect(item).to_contain_text("Refund ORD-10001")
            missed = late.locator(f'#approvals button[data-approval="{refund_id}"]')
            await expect(missed).to_have_count(0)
            # ... and the reconnect's first reload is refused (a replica warming up: 503): the page
            # tries again by itself instead of leaving the list as it was.
            first_reload = RefuseFirst()
            await late.route(lambda url: "/api/approvals?" in url, first_reload)  # the list, not one
            await held[-1].close()
            await expect(missed).to_be_visible(timeout=15_000)
            assert len(first_reload.refused) == 1, "the reconnect's first reload was refused"
            await late.close()
            await item.click()
            await expect(agent.locator("#approval-title")).to_have_text(refund_id)
            # The amount starts at the order total (the customer named none) and says its limit.
            # The conversation, although an agent's token cannot read the customer's transcript API.
            await expect(agent.locator("#approval-transcript .turn.customer").last).to_contain_text(
                "charged twice"
            )
            await expect(agent.locator("#approve-amount")).to_have_value("119.98")
            await expect(agent.locator("#amount-hint")).to_contain_text("at most 119.98")

            # 422: more than the total is refused by the gateway, naming the field; the typed amount
            # is kept and the focus returns to it.
            await agent.fill("#approve-amount", "500")
            await agent.press("#approve-amount", "Enter")
            await expect(agent.locator("#error")).to_contain_text("422", timeout=15_000)
            await expect(agent.locator("#error")).to_contain_text("amount")
            await expect(agent.locator("#approve-amount")).to_have_value("500")
            await expect(agent.locator("#approve-amount")).to_be_focused()
            await expect(agent.locator("#approval-state")).to_have_text("pending")

            await agent.fill("#approve-amount", "50")
            await agent.press("#approve-amount", "Enter")
            await expect(agent.locator("#approval-state")).to_have_text("approved", timeout=15_000)
            await expect(agent.locator("#error")).to_be_hidden()
            await expect(agent.locator("#approval-summary")).to_contain_text(f"approved by {AGENT} for 50.00")
            await expect(agent.locator("#approval-audit")).to_contain_text("executed", timeout=LIVE_MS)
            await expect(customer.locator(".msg.person").last).to_contain_text(
                "Your refund request for ORD-10001 was approved for 50.00.", timeout=LIVE_MS
            )

            # A denial: no reason is a 422 naming it; with one, the customer is told why.
            await ask_in_widget(customer, JOHN, "I want a refund for ORD-10003 please")
            item, denied_id = await request_in_console(agent, "ORD-10003")
            await item.click()
            await expect(agent.locator("#approval-title")).to_have_text(denied_id)
            await agent.press("#deny-reason", "Enter")
            await expect(agent.locator("#error")).to_contain_text("422", timeout=15_000)
            await expect(agent.locator("#error")).to_contain_text("reason")
            await expect(agent.locator("#deny-reason")).to_be_focused()
            # Markup in a reason stays text, in the console and in the customer's page.
            reason = "Delivered 45 days ago, past the refund window <b>sorry</b>"
            await agent.fill("#deny-reason", reason)
            await agent.press("#deny-reason", "Enter")
            await expect(agent.locator("#approval-state")).to_have_text("denied", timeout=15_000)
            await expect(agent.locator("#approval-summary")).to_contain_text(f"denied by {AGENT}: {reason}")
            last_audit = agent.locator("#approval-audit tbody tr").last
            await expect(last_audit).to_contain_text(AGENT)
            await expect(last_audit).to_contain_text(reason)
            told = customer.locator(".msg.person").last
            await expect(told).to_contain_text(
                "Your refund request for ORD-10003 was declined: " + reason, timeout=LIVE_MS
            )

            # The decided ones are listed under their state, with the decision.
            await agent.select_option("#approval-filter", "denied")
            await expect(agent.locator(f'#approvals button[data-approval="{denied_id}"]')).to_contain_text(
                f"denied by {AGENT}"
            )
            # 404: a request that does not exist, opened from a link.
            await agent.goto(f"{stack.url}/console#APR-00000000")
            await expect(agent.locator("#error")).to_contain_text("404", timeout=15_000)
            await expect(agent.locator("#approval-body")).to_be_hidden()
            state = await mock_state(stack)
            assert problems == [], problems
        finally:
            await browser.close()
    refunds = [(r["order_id"], r["amount"]) for r in state["records"] if r.get("kind") == "refund"]
    assert refunds == [("ORD-10001", 50.0)]  # issued once, for the approved amount; none denied
