"""The agent console and the customer's widget together in real headless Chromium, against a real mesh
(nine actors, the history service, two gateway replicas, a real nats-server and SQLite file):

- a customer asks for a human in the widget (one browser context); the escalation appears in the
  console (another context) live, without a reload; the agent claims it, replies, and the reply
  arrives in the customer's page as a message from a person; a reply sent while the customer's replica
  is down reaches the page once it reconnects; the agent resolves it; a reloaded widget shows each
  reply once; wrong input and stale pages get the gateway's 404/409/422 shown;
- with JWT_SECRET the console asks for a token: a customer's token is refused (403 shown), an
  agent's token works and never travels in a URL;
- a console over the gateway's rate limit says when to try again (the 429's `Retry-After`);
- the console's pure helpers (error text, queue order, facts, token subject) as the browser runs them.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import jwt
import pytest

from actormesh_runtime.gateway.app import create_app
from actormesh_runtime.gateway.auth import mint_token
from actormesh_runtime.gateway.server import GatewayServer
from tests.support.browser import (
    LIVE_MS,
    RefuseFirst,
    escalate_in_widget,
    evaluate_in_console,
    launch_chromium,
    page_problems,
    require_browser,
)
from tests.support.gateway import JANE, JOHN, gateway_stack, stack_settings

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SECRET = "console-browser-secret-with-enough-length-0123"


def agent_token(email: str) -> str:
    """What the storefront's staff login (or `actormesh token --role agent`) mints."""
    now = int(time.time())
    return jwt.encode(
        {"sub": email, "role": "agent", "iat": now, "exp": now + 3600}, SECRET, algorithm="HS256"
    )


async def test_a_customer_escalates_and_an_agent_answers_from_the_console(
    nats_server: str, tmp_path: Path
) -> None:
    require_browser()
    from playwright.async_api import async_playwright, expect

    settings = stack_settings(nats_server, tmp_path)
    # Two replicas, as two gateway pods: the customer's socket is on one, the agent's console on the
    # other, so the escalation and the reply must travel over NATS to reach the other page.
    async with gateway_stack(settings, replicas=2) as stack, async_playwright() as pw:
        customer_url, console_url = stack.urls
        browser = await launch_chromium(pw)
        try:
            customer = await (await browser.new_context()).new_page()
            agent_context = await browser.new_context()
            agent = await agent_context.new_page()
            problems = page_problems(agent)

            await agent.goto(f"{console_url}/console")
            await expect(agent.locator("#status")).to_have_attribute("data-state", "online", timeout=15_000)
            await expect(agent.locator("#auth-note")).to_contain_text("loopback")
            await expect(agent.locator("#token-form")).to_be_hidden()
            await agent.fill("#agent-name", "Alex")
            await agent.evaluate("window.__sameDocument = true")

            await customer.goto(f"{customer_url}/widget")
            # Markup in the customer's words must stay text in the agent's browser.
            words = 'I want to talk to a human <img src=x onerror="window.__pwned=1">'
            ref = await escalate_in_widget(customer, JOHN, words)

            # Live: the escalation shows up in the open queue without a reload.
            item = agent.locator(f'#queue button[data-ref="{ref}"]')
            await expect(item).to_be_visible(timeout=LIVE_MS)
            assert await agent.evaluate("window.__sameDocument === true"), "the console reloaded"
            await expect(item).to_contain_text(JOHN)

            # Keyboard: Tab from the state filter reaches the queue; Enter opens the escalation and the
            # detail takes the focus.
            await agent.focus("#state-filter")
            await agent.keyboard.press("Tab")
            await expect(item).to_be_focused()
            await agent.keyboard.press("Enter")
            await expect(agent.locator("#detail-title")).to_have_text(ref)
            await expect(agent.locator("#detail-title")).to_be_focused()
            await expect(agent.locator("#detail-state")).to_have_text("open")
            await expect(agent.locator("#transcript .turn.customer").first).to_contain_text("<img src=x")
            assert await agent.evaluate("window.__pwned === undefined")
            await expect(agent.locator("#facts h4").first).to_be_visible()
            await expect(agent.locator("#send")).to_be_disabled()  # reply needs a claim first

            # A second agent's console whose live socket never delivers (a stale page).
            stale = await agent_context.new_page()
            await stale.route_web_socket("**/ws/agent", lambda ws: None)
            await stale.goto(f"{console_url}/console#{ref}")
            await expect(stale.locator("#detail-state")).to_have_text("open", timeout=15_000)

            await agent.click("#claim")
            await expect(agent.locator("#detail-state")).to_have_text("claimed", timeout=15_000)
            await expect(agent.locator("#summary")).to_contain_text("Alex")
            await expect(agent.locator("#reply")).to_be_focused()

            # 409: the stale page still offers the claim; the gateway refuses it and the page says why.
            await stale.fill("#agent-name", "Sam")
            await stale.click("#claim")
            await expect(stale.locator("#error")).to_contain_text("409", timeout=15_000)
            await stale.close()

            # 422: an empty reply is refused naming the field.
            await agent.press("#reply", "Enter")
            await expect(agent.locator("#error")).to_contain_text("422", timeout=15_000)
            await expect(agent.locator("#error")).to_contain_text("text")

            answer = "Hi John, this is Alex from support. I have your order in front of me."
            await agent.fill("#reply", answer)
            await agent.press("#reply", "Enter")
            await expect(agent.locator("#error")).to_be_hidden(timeout=15_000)
            await expect(agent.locator("#transcript .turn.person").last).to_contain_text(
                answer, timeout=15_000
            )

            # The customer's page gets it live, as a message from a person, with the agent's name.
            person = customer.locator(".msg.person").last
            await expect(person).to_contain_text(answer, timeout=LIVE_MS)
            await expect(person.locator(".agent-name")).to_have_text("Alex")
            await expect(person).to_have_attribute("data-ref", ref)

            # The customer's replica goes away; a second reply is sent meanwhile. Once the widget has
            # reconnected (to the restarted replica) it shows the reply it missed, from the store, even
            # though its first look there fails (a replica warming up, a busy history service: 503).
            first_look = RefuseFirst()
            await customer.route("**/api/conversations/**", first_look)
            port = stack.servers[0].port
            await stack.servers[0].stop()
            await expect(customer.locator("#status")).to_have_attribute(
                "data-state", "offline", timeout=15_000
            )
            missed = "One more thing: I have added a note to your account."
            await agent.fill("#reply", missed)
            await agent.press("#reply", "Enter")
            await expect(agent.locator("#transcript .turn.person").last).to_contain_text(
                missed, timeout=15_000
            )
            await stack.mesh.enter_context(GatewayServer(create_app(stack.mesh.settings), port=port))
            await expect(customer.locator("#status")).to_have_attribute(
                "data-state", "online", timeout=30_000
            )
            await expect(customer.locator(".msg.person")).to_have_count(2, timeout=15_000)
            await expect(customer.locator(".msg.person").last).to_contain_text(missed)
            assert len(first_look.refused) == 1, "the first catch-up after the reconnect was refused"

            await agent.fill("#note", "answered the customer")
            await agent.press("#note", "Enter")
            await expect(agent.locator("#detail-state")).to_have_text("resolved", timeout=15_000)
            await expect(item).to_be_hidden()  # no longer open
            await expect(agent.locator("#claim")).to_be_disabled()
            await expect(agent.locator("#send")).to_be_disabled()

            # 404: a reference that does not exist.
            await agent.goto(f"{console_url}/console#ESC-00000000")
            await expect(agent.locator("#error")).to_contain_text("404", timeout=15_000)

            # The customer reopens the chat: the stored transcript shows each of the person's replies once.
            await customer.reload()
            await expect(customer.locator(".msg.person")).to_have_count(2, timeout=15_000)
            await expect(customer.locator(".msg.person .agent-name").first).to_have_text("Alex")
            assert problems == [], problems
        finally:
            await browser.close()


async def test_with_a_key_the_console_takes_an_agent_token_not_a_customers(
    nats_server: str, tmp_path: Path
) -> None:
    require_browser()
    from playwright.async_api import async_playwright, expect

    settings = stack_settings(nats_server, tmp_path, jwt_secret=SECRET)
    async with gateway_stack(settings) as stack, async_playwright() as pw:
        browser = await launch_chromium(pw)
        try:
            customer = await (await browser.new_context()).new_page()
            await customer.goto(f"{stack.url}/widget")
            await customer.fill("#token", mint_token(SECRET, JANE))
            await customer.locator("#token").dispatch_event("change")
            ref = await escalate_in_widget(customer, JANE, "I want to talk to a human please")

            agent = await (await browser.new_context()).new_page()
            socket_urls: list[str] = []
            agent.on("websocket", lambda ws: socket_urls.append(ws.url))
            await agent.goto(f"{stack.url}/console")
            await expect(agent.locator("#token-form")).to_be_visible()
            await expect(agent.locator("#auth-note")).to_be_hidden()
            await expect(agent.locator("#error")).to_contain_text("needs an agent token", timeout=15_000)

            await agent.fill("#token", mint_token(SECRET, JANE))  # a customer's token: no agent role
            await agent.press("#token", "Enter")
            await expect(agent.locator("#error")).to_contain_text("403", timeout=15_000)
            # Refused for who it is: the page stops retrying and waits for another token.
            await expect(agent.locator("#status")).to_have_text("not signed in")
            await expect(agent.locator("#signed-in")).to_have_text("Not signed in.")

            await agent.fill("#token", agent_token("alex@shop.example"))
            await agent.press("#token", "Enter")
            await expect(agent.locator("#status")).to_have_attribute("data-state", "online", timeout=15_000)
            await expect(agent.locator("#signed-in")).to_contain_text("alex@shop.example")
            await expect(agent.locator(f'#queue button[data-ref="{ref}"]')).to_be_visible(timeout=15_000)
            await agent.locator(f'#queue button[data-ref="{ref}"]').click()
            await agent.click("#claim")
            await expect(agent.locator("#summary")).to_contain_text("alex@shop.example", timeout=15_000)
            await agent.fill("#reply", "Hello Jane, Alex here.")
            await agent.press("#reply", "Enter")
            await expect(customer.locator(".msg.person").last).to_contain_text("Hello Jane", timeout=LIVE_MS)
            assert socket_urls
            assert not [url for url in socket_urls if "token" in url or "bearer" in url], socket_urls
        finally:
            await browser.close()


HELPER_CASES = """
() => {
  const c = window.actormeshConsole;
  const q = [
    {ref: "ESC-3", priority: "normal", created_at: "2026-01-01T10:00:00Z"},
    {ref: "ESC-2", priority: "urgent", created_at: "2026-01-01T11:00:00Z"},
    {ref: "ESC-1", priority: "normal", created_at: "2026-01-01T09:00:00Z"},
    {ref: "ESC-4", priority: "low", created_at: "2026-01-01T08:00:00Z"},
  ];
  const claims = btoa(JSON.stringify({sub: "alex@shop.example", role: "agent"})).replace(/=+$/, "");
  return {
    order: q.slice().sort(c.compareEscalations).map((r) => r.ref),
    conflict: c.describeError(409, {error: "conflict", detail: "ESC-1 is resolved"}),
    invalid: c.describeError(422, {detail: "text: must not be empty",
                                   fields: [{field: "text", message: "must not be empty"}]}),
    fastapi: c.describeError(422, {detail: [{loc: ["body", "agent"], msg: "Field required"}]}),
    offline: c.describeError(0, "the gateway is not reachable"),
    limited: c.describeError(429, {error: "rate_limited", limit: "RATE_LIMIT_REQUESTS"}, 11.2),
    noRetryAfter: c.describeError(503, {error: "overloaded"}, NaN),
    reloads: [[503, 0], [503, 1], [0, 4], [503, 5], [500, 2], [404, 0], [403, 0], [undefined, 0]]
      .map(([status, attempt]) => c.reloadDelayMs(status, attempt)),
    fact: c.factLine({order_id: "ORD-1", total: 12.5, note: null,
                      items: [{name: "Laptop Stand", quantity: 1}, {name: "Hub", quantity: 2}]}),
    subject: c.tokenSubject("x." + claims + ".y"),
    badToken: c.tokenSubject("garbage"),
    age: c.age("2026-01-01T10:00:00Z", Date.parse("2026-01-01T10:05:00Z")),
    talk: c.conversation(
      [{role: "customer", customer_email: "j@x", text: "help", created_at: "t1"},
       {role: "agent", text: "auto", created_at: "t2"},
       {role: "agent", author: "Alex", text: "hi", created_at: "t3"}],
      [{agent: "Alex", text: "hi", at: "t3"}, {agent: "Alex", text: "more", at: "t4"}]
    ).map((t) => t.kind + ":" + t.text),
  };
}
"""


async def test_the_consoles_helpers_in_the_browser(nats_server: str, tmp_path: Path) -> None:
    require_browser()
    got = await evaluate_in_console(stack_settings(nats_server, tmp_path), HELPER_CASES)
    assert got["order"] == ["ESC-2", "ESC-1", "ESC-3", "ESC-4"]
    assert got["conflict"] == "409 Conflict: ESC-1 is resolved"
    assert got["limited"] == "429 Too many requests: rate_limited (try again in 12 s)"
    assert got["noRetryAfter"] == "503 Unavailable: overloaded"
    # 5xx or no answer: 0.5, 1, ... 8 s, then give up; a 4xx at once; a failure without a status
    # (a bug in the page, not the gateway) is tried again like no answer.
    assert got["reloads"] == [500, 1000, 8000, None, 2000, None, None, 500]
    assert got["invalid"] == "422 Invalid input: text: must not be empty"
    assert got["fastapi"] == "422 Invalid input: agent: Field required"
    assert got["offline"] == "Gateway unreachable: the gateway is not reachable"
    assert got["fact"] == "order id: ORD-1 · total: 12.5 · items: Laptop Stand \u00d71, Hub \u00d72"
    assert got["subject"] == "alex@shop.example"
    assert got["badToken"] is None
    assert got["age"] == "5 min ago"
    assert got["talk"] == ["customer:help", "mesh:auto", "person:hi", "person:more"]


APPROVAL_HELPER_CASES = """
() => {
  const a = window.actormeshApprovals;
  const refund = a.normalizeApproval({
    id: "APR-1", action: "create_refund_request", state: "pending", customer_email: "j@x",
    customer_tier: "standard", order: {order_id: "ORD-1", total: 129.99, items: []},
  });
  const cancel = a.normalizeApproval({
    id: "APR-2", action: "cancel_order", customer_email: "k@x", customer_tier: "vip",
    order: {order_id: "ORD-2", total: 10},
  });
  const q = [
    {id: "APR-c", priority: "normal", deadline_at: "2026-01-01T12:00:00Z"},
    {id: "APR-b", priority: "urgent", deadline_at: "2026-01-01T13:00:00Z"},
    {id: "APR-a", priority: "normal", deadline_at: "2026-01-01T11:00:00Z"},
    {id: "APR-d", priority: "low", deadline_at: "2026-01-01T08:00:00Z"},
  ];
  const now = Date.parse("2026-01-01T10:00:00Z");
  return {
    refund: [refund.email, refund.tier, refund.orderId, refund.total, refund.isRefund, refund.actionLabel],
    cancel: [cancel.email, cancel.tier, cancel.orderId, cancel.total, cancel.isRefund, cancel.actionLabel],
    order: q.slice().sort(a.compareApprovals).map((r) => r.id),
    due: a.deadlineText("2026-01-01T10:14:00Z", now),
    late: a.deadlineText("2026-01-01T09:57:00Z", now),
    defaultTotal: a.defaultAmount(refund),
    defaultUnknown: a.defaultAmount(a.normalizeApproval({action: "create_refund_request", order: {}})),
    amounts: ["40", "40.5", "12,50", "", "  ", "abc", "-5", "1.234", "1e3"].map((t) => a.parseAmount(t)),
    item: a.itemLine({name: "Desk Lamp", quantity: 2, unit_price: 39.99}),
    approved: a.decisionText(a.normalizeApproval({decision: {verdict: "approve", by: "Alex", amount: 40.5}})),
    denied: a.decisionText(a.normalizeApproval({decision: {verdict: "deny", by: "Sam", reason: "used"}})),
    audit: a.auditTrail([
      {who: "Alex", at: "2026-01-01T10:05:00Z", what: "approved"},
      {who: "system", at: "2026-01-01T10:00:00Z", what: "requested", why: "policy"},
      {who: "execution_coordinator", at: "2026-01-01T10:05:00Z", what: "executed"},
    ]).map((e) => e.who + ":" + e.what + ":" + e.why),
    newer: [
      a.isNewer({audit: [1, 2, 3]}, {audit: [1, 2]}),
      a.isNewer({audit: [1, 2]}, {audit: [1, 2, 3]}),
      a.isNewer({audit: [1]}, undefined),
    ],
  };
}
"""


async def test_the_approval_helpers_in_the_browser(nats_server: str, tmp_path: Path) -> None:
    require_browser()
    got = await evaluate_in_console(stack_settings(nats_server, tmp_path), APPROVAL_HELPER_CASES)
    # Records as approvals.py's `ApprovalRecord` shapes them (flat customer fields, `order.order_id`).
    assert got["refund"] == ["j@x", "standard", "ORD-1", 129.99, True, "Refund"]
    assert got["cancel"] == ["k@x", "vip", "ORD-2", 10, False, "Cancel order"]
    assert got["order"] == ["APR-b", "APR-a", "APR-c", "APR-d"]  # priority, then nearest deadline
    assert got["due"] == {"text": "due in 14 min", "overdue": False}
    assert got["late"] == {"text": "overdue by 3 min", "overdue": True}
    assert got["defaultTotal"] == "129.99"  # the order total is offered
    assert got["defaultUnknown"] == ""  # no total: the agent types the amount
    values = [case.get("value") for case in got["amounts"]]
    assert values == [40, 40.5, 12.5, None, None, None, None, None, None]
    # An empty or unreadable amount is an error, never "no amount" (which would approve the total).
    assert [case.get("error", "").split(":")[0] for case in got["amounts"][3:]] == ["amount"] * 6
    assert got["item"] == "Desk Lamp \u00d72 \u00b7 39.99 each"
    assert got["approved"] == "approved by Alex for 40.50"
    assert got["denied"] == "denied by Sam: used"
    assert got["audit"] == [
        "system:requested:policy",
        "Alex:approved:",
        "execution_coordinator:executed:",
    ]
    # A late copy (fewer audit entries: the decision's answer after its execution's event) is older.
    assert got["newer"] == [True, False, True]


async def test_a_console_over_the_rate_limit_says_when_to_try_again(nats_server: str, tmp_path: Path) -> None:
    require_browser()
    from playwright.async_api import async_playwright, expect

    # Three API requests a minute from this address: the page's own loads use them up, and each change
    # of the queue's filter asks again, so the last changes are refused by the gateway's real limiter.
    settings = stack_settings(nats_server, tmp_path, rate_limit_requests=3)
    async with GatewayServer(create_app(settings), port=0) as server, async_playwright() as pw:
        browser = await launch_chromium(pw)
        try:
            page = await browser.new_page()
            await page.goto(f"{server.url}/console")
            for state in ["resolved", "open", "claimed", "resolved"]:
                await page.select_option("#state-filter", state)

            await expect(page.locator("#error")).to_have_text(
                re.compile(r"Loading the queue failed: 429 Too many requests: .+ \(try again in \d+ s\)"),
                timeout=15_000,
            )
        finally:
            await browser.close()
