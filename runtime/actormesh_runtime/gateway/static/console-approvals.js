// The agent console's approval requests: side effects the store's policy leaves to a person (a
// standard-tier cancellation, every refund request). The pending queue (live over /ws/agent:
// approval.created / approval.updated, reloaded on every reconnect), one request with the facts that
// matter, approve (refunds: for an amount up to the order total) or deny with a reason, and the audit
// trail (who, when, what, why) on the request and on its escalation. The gateway decides; the page
// shows its answer, errors with their status. Text from customers or the server goes in as text only.
"use strict";

// ------------------------------------------------------------------ pure helpers (no DOM, no I/O)
const ACTION_LABELS = { cancel_order: "Cancel order", create_refund_request: "Refund" };

/** The gateway's record (`ApprovalRecord` in runtime/actormesh_runtime/approvals.py) as the page
 * reads it, with defaults for what a record may leave out. */
function normalizeApproval(raw) {
  const r = raw || {};
  const order = r.order || {};
  const total = typeof order.total === "number" ? order.total : null;
  return {
    id: r.id, ref: r.ref || null, state: r.state, priority: r.priority, action: r.action,
    actionLabel: ACTION_LABELS[r.action] || String(r.action || "").replace(/_/g, " "),
    isRefund: r.action === "create_refund_request",
    orderId: order.order_id || "", orderStatus: order.status || null, total,
    items: Array.isArray(order.items) ? order.items : [],
    email: r.customer_email || "", tier: r.customer_tier || "",
    words: r.customer_words || "", sessionId: r.session_id || "", requestId: r.request_id || "",
    createdAt: r.created_at || "", deadlineAt: r.deadline_at || "",
    escalations: Number(r.escalations) || 0, decision: r.decision || null,
    audit: Array.isArray(r.audit) ? r.audit : [],
  };
}

/** Queue order: priority (urgent first), then the nearest deadline, then id. */
function compareApprovals(a, b) {
  const order = window.actormeshConsole.PRIORITIES;   // one list for both queues (console.js)
  const rank = (p) => { const i = order.indexOf(p); return i < 0 ? order.length : i; };
  if (rank(a.priority) !== rank(b.priority)) return rank(a.priority) - rank(b.priority);
  const da = Date.parse(a.deadline_at) || Infinity, db = Date.parse(b.deadline_at) || Infinity;
  if (da !== db) return da < db ? -1 : 1;
  return String(a.id).localeCompare(String(b.id));
}

/** "12.50"; "" for no amount. */
function money(amount) {
  if (typeof amount !== "number" || !isFinite(amount)) return "";
  return amount.toFixed(2);
}

function span(seconds) {
  if (seconds < 90) return Math.max(1, Math.round(seconds)) + " s";
  if (seconds < 5400) return Math.round(seconds / 60) + " min";
  if (seconds < 172800) return Math.round(seconds / 3600) + " h";
  return Math.round(seconds / 86400) + " d";
}

/** How the deadline stands at `now` (ms): {text: "due in 14 min" | "overdue by 3 min", overdue}. */
function deadlineText(iso, now) {
  const due = Date.parse(iso);
  if (!due) return { text: "", overdue: false };
  const s = (due - now) / 1000;
  return s > 0 ? { text: "due in " + span(s), overdue: false } : { text: "overdue by " + span(-s), overdue: true };
}

/** What the amount field starts with: the order total ("" if unknown). */
function defaultAmount(a) {
  return money(a.total);
}

/** The typed amount as a number, or {error} naming the field. "12,50" reads as 12.50 (a decimal
 * comma is common); an empty or unreadable field is never sent as "no amount" (that would approve
 * the whole total). Limits (more than 0, at most the total) are the gateway's to check: its 422 is
 * shown as it is. */
function parseAmount(text) {
  const t = String(text || "").trim();
  if (!t) return { error: "amount: enter the amount to refund" };
  if (!/^\d+(?:[.,]\d{1,2})?$/.test(t)) return { error: "amount: not an amount (like 12.50)" };
  return { value: Number(t.replace(",", ".")) };
}

/** A line item: "Desk Lamp ×2 · 39.99 each"; any other shape as the console's fact line. */
function itemLine(item) {
  if (!item || typeof item !== "object" || item.name === undefined) return window.actormeshConsole.factLine(item);
  return String(item.name) + " ×" + (item.quantity !== undefined ? item.quantity : 1) +
    (typeof item.unit_price === "number" ? " · " + money(item.unit_price) + " each" : "");
}

/** The decision in words: "approved by Alex for 40.00" / "denied by Sam: out of policy". */
function decisionText(a) {
  const d = a.decision;
  if (!d) return "";
  const verdict = d.verdict === "approve" ? "approved" : d.verdict === "deny" ? "denied" : String(d.verdict);
  let text = verdict + " by " + (d.by || "?");
  if (typeof d.amount === "number") text += " for " + money(d.amount);
  if (d.reason) text += ": " + d.reason;
  return text;
}

/** The audit trail, oldest first (the gateway's order when times tie). */
function auditTrail(audit) {
  return (audit || []).map((e, i) => [e, i])
    .sort(([a, i], [b, j]) => (Date.parse(a.at) || 0) - (Date.parse(b.at) || 0) || i - j)
    .map(([e]) => ({ who: e.who || "", at: e.at || "", what: e.what || "", why: e.why || "" }));
}

/** Whether `incoming` may replace `known` (the same request): the audit trail only grows, so a copy
 * with fewer entries is older — events from two processes (the decision, the execution's result)
 * and the decision's own HTTP answer can arrive in any order. */
function isNewer(incoming, known) {
  if (!known || !incoming) return true;
  const n = (r) => (Array.isArray(r.audit) ? r.audit.length : 0);
  return n(incoming) >= n(known);
}

window.actormeshApprovals = {
  normalizeApproval, compareApprovals, money, deadlineText, defaultAmount, parseAmount, itemLine, decisionText,
  auditTrail, isNewer,
};

// ------------------------------------------------------------------ the page's part
(window.actormeshConsoleParts = window.actormeshConsoleParts || []).push((ctx) => {
  const { $, el, api, events, reloadDelayMs } = ctx;
  const state = { filter: "pending", items: new Map(), cursor: null, selected: null, record: null, turns: [], busy: false };
  const latest = new Map();   // id -> the newest copy seen of each request (any state)

  /** The newest copy of this request seen so far: `record` unless an older copy arrived late. */
  function newest(record) {
    const known = latest.get(record.id);
    if (!isNewer(record, known)) return known;
    latest.set(record.id, record);
    return record;
  }
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");

  // ---------------------------------------------------------------- the queue
  function renderList() {
    const list = $("approvals");
    const focusedId = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.approval : null;
    const records = Array.from(state.items.values()).sort(compareApprovals);
    const now = Date.now();
    list.replaceChildren(...records.map((r) => listItem(r, now)));
    $("approvals-empty").hidden = records.length > 0;
    $("approvals-count").textContent = records.length + (state.cursor ? "+" : "") + " " + state.filter;
    $("approvals-more").hidden = !state.cursor;
    if (focusedId) {
      const again = list.querySelector('button[data-approval="' + CSS.escape(focusedId) + '"]');
      if (again) again.focus();
    }
  }

  function listItem(raw, now) {
    const a = normalizeApproval(raw);
    const button = el("button", "apr " + (a.priority || ""));
    button.type = "button";
    button.dataset.approval = a.id;
    button.setAttribute("aria-current", a.id === state.selected ? "true" : "false");
    if (raw._fresh) { button.classList.add("fresh"); delete raw._fresh; }
    const first = el("span", "line");
    first.append(el("span", "prio " + (a.priority || ""), a.priority || "?"), el("span", "ref", a.id),
                 el("span", "sub", a.actionLabel + " " + a.orderId));
    const second = el("span", "line sub",
      (a.email || "unknown customer") + (a.tier ? " (" + a.tier + ")" : "") +
      (a.total !== null ? " · order total " + money(a.total) : "") +
      (a.escalations ? " · re-escalated ×" + a.escalations : ""));
    const third = el("span", "line");
    if (a.state === "pending") {
      const due = deadlineText(a.deadlineAt, now);
      third.appendChild(el("span", due.overdue ? "overdue" : "sub", due.text));
    } else {
      third.appendChild(el("span", "sub", decisionText(a)));
    }
    button.append(first, second, third);
    button.addEventListener("click", () => open(a.id));
    const li = el("li");
    li.appendChild(button);
    return li;
  }

  async function loadList(append, attempt = 0) {
    const params = new URLSearchParams({ state: state.filter, limit: "50" });
    if (append && state.cursor) params.set("cursor", state.cursor);
    try {
      const page = await api("GET", "/api/approvals?" + params);
      if (!append) state.items.clear();
      (page.items || []).forEach((r) => { const n = newest(r); if (n.state === state.filter) state.items.set(n.id, n); });
      state.cursor = page.next_cursor || null;
      $("approvals-error").hidden = true;
      renderList();
    } catch (e) {
      // Shown in the list it concerns: the escalation queue beside it may be working fine.
      const delay = reloadDelayMs(e.status, attempt);
      $("approvals-error").textContent = "Loading the approval requests failed: " + e.message
        + (delay === null ? "" : " (trying again)");
      $("approvals-error").hidden = false;
      if (delay !== null) setTimeout(() => loadList(append, attempt + 1), delay);
    }
  }

  function onApproval(kind, incoming) {
    if (!incoming || !incoming.id) return;
    const record = newest(incoming);
    if (record.state === state.filter) {
      if (kind === "approval.created" && !state.items.has(record.id)) {
        record._fresh = true;
        const a = normalizeApproval(record);
        ctx.announce("New approval request " + a.id + ": " + a.actionLabel + " " + a.orderId);
      }
      state.items.set(record.id, record);
    } else {
      state.items.delete(record.id);
    }
    renderList();
    if (record.id === state.selected && !$("approval-panel").hidden) {
      renderDetail(record, state.turns);
      refreshTranscript(record.id);   // what the customer was told is a new turn
    }
    const esc = ctx.currentEscalation();
    if (esc && belongsTo(record, esc)) loadForEscalation(esc);
  }

  // ---------------------------------------------------------------- one request
  let seq = 0;

  async function open(id) {
    ctx.showView("approval");
    state.selected = id;
    if (location.hash !== "#" + id) history.replaceState(null, "", "#" + id);
    renderList();
    ctx.showError("");
    const mine = ++seq;
    try {
      const found = await fetchRequest(id);
      if (mine !== seq) return;
      renderDetail(found.approval, found.turns, true);
      $("approval-title").focus();
    } catch (e) {
      if (mine !== seq) return;
      state.record = null;
      $("approval-body").hidden = true;
      $("approval-title").textContent = id;
      $("approval-state").hidden = $("approval-priority").hidden = true;
      ctx.showError(e.message);
    }
  }

  // The request with its whole conversation (the "history" next to the customer's words): an agent's
  // token cannot read a customer's `/api/conversations/…`, this route answers agents.
  async function fetchRequest(id) {
    const body = await api("GET", "/api/approvals/" + encodeURIComponent(id) + "/conversation");
    return { approval: body.approval, turns: Array.isArray(body.turns) ? body.turns : [] };
  }

  async function refreshTranscript(id) {
    const mine = seq;
    try {
      const found = await fetchRequest(id);
      if (mine === seq && state.selected === id) renderDetail(found.approval, found.turns);
    } catch (e) { /* the record on screen stays; the next event or a reopen tries again */ }
  }

  function renderDetail(raw, turns, fresh) {
    const a = normalizeApproval(newest(raw));
    const sameRequest = state.record && state.record.id === a.id;
    state.record = a;
    state.turns = turns;
    $("approval-title").textContent = a.id;
    $("approval-state").textContent = a.state;
    $("approval-state").className = "badge " + a.state;
    $("approval-priority").textContent = a.priority;
    $("approval-priority").className = "prio " + a.priority;
    $("approval-state").hidden = $("approval-priority").hidden = false;
    $("approval-body").hidden = false;
    $("approval-body").dataset.approval = a.id;
    $("approval-body").dataset.state = a.state;

    const now = Date.now();
    const due = deadlineText(a.deadlineAt, now);
    let escalation = "none";
    if (a.ref) {
      escalation = el("a", null, a.ref);
      escalation.href = "#" + a.ref;
    }
    const rows = [
      ["Action", a.actionLabel + " " + a.orderId],
      ["Customer", (a.email || "unknown") + (a.tier ? " · " + a.tier + " tier" : "")],
      ["Escalation", escalation],
      ["Order total", a.total !== null ? money(a.total) : "unknown"],
    ];
    rows.push(["Requested", when(a.createdAt)]);
    if (a.state === "pending") rows.push(["Deadline", when(a.deadlineAt) + " (" + due.text + ")", due.overdue ? "overdue" : null]);
    rows.push(["Re-escalated", a.escalations ? a.escalations + (a.escalations === 1 ? " time" : " times") + " (deadline passed)" : "no"]);
    if (a.decision) rows.push(["Decision", decisionText(a) + (a.decision.at ? " · " + when(a.decision.at) : "")]);
    if (a.requestId) rows.push(["Request record", a.requestId]);
    rows.push(["Session", a.sessionId]);
    const summary = rows.flatMap(([k, v, cls]) => {
      const dd = el("dd", cls || null);
      if (v instanceof Node) dd.appendChild(v); else dd.textContent = v || "";
      return [el("dt", null, k), dd];
    });
    $("approval-summary").replaceChildren(...summary);
    $("approval-words").textContent = a.words || "(no message stored)";

    const order = [el("p", null, [a.orderId, a.orderStatus ? "status: " + a.orderStatus : ""].filter(Boolean).join(" · "))];
    if (a.items.length) {
      const list = el("ul");
      a.items.forEach((item) => list.appendChild(el("li", null, itemLine(item))));
      order.push(list);
    }
    $("approval-order").replaceChildren(...order);

    $("approval-audit").replaceChildren(auditTable(a.audit));
    ctx.renderTranscript($("approval-transcript"), state.turns, []);

    const pending = a.state === "pending";
    $("approval-controls").hidden = !pending;
    $("amount-field").hidden = !a.isRefund;
    $("amount-hint").textContent = a.total !== null ? "(at most " + money(a.total) + ", the order total)" : "";
    $("approve").textContent = a.isRefund ? "Approve refund" : "Approve cancellation";
    // A new request starts from its defaults; a live update of the one on screen keeps what was typed.
    if (fresh || !sameRequest) {
      $("approve-amount").value = defaultAmount(a);
      $("deny-reason").value = "";
    }
    setBusy(false);
  }

  function auditTable(audit) {
    const rows = auditTrail(audit);
    if (!rows.length) return el("p", "muted", "No audit entries.");
    const table = el("table", "audit");
    const head = el("tr");
    ["When", "Who", "What", "Why"].forEach((h) => { const th = el("th", null, h); th.scope = "col"; head.appendChild(th); });
    const thead = el("thead");
    thead.appendChild(head);
    const tbody = el("tbody");
    rows.forEach((e) => {
      const tr = el("tr");
      tr.append(el("td", null, when(e.at)), el("td", null, e.who), el("td", null, e.what), el("td", null, e.why));
      tbody.appendChild(tr);
    });
    table.append(thead, tbody);
    return table;
  }

  function setBusy(busy) {
    state.busy = busy;
    const pending = state.record && state.record.state === "pending";
    ["approve", "deny", "approve-amount", "deny-reason"].forEach((id) => { $(id).disabled = busy || !pending; });
  }

  async function decide(verdict, body, done) {
    const a = state.record;
    if (!a || state.busy) return;   // a double click sends one request; the gateway guards the rest
    ctx.showError("");
    setBusy(true);
    try {
      const record = await api("POST", "/api/approvals/" + encodeURIComponent(a.id) + "/" + verdict, ctx.asAgent(body));
      if (done) done();
      renderDetail(record, state.turns);
      onApproval("approval.updated", record);
      $("approval-title").focus();
      ctx.announce(a.id + " " + decisionText(normalizeApproval(record)));
    } catch (e) {
      setBusy(false);
      ctx.showError((verdict === "approve" ? "Approve" : "Deny") + " failed: " + e.message);
      // 422: back to the field at fault, with what was typed still there.
      if (e.status === 422) $(/\breason\b/.test(e.message) ? "deny-reason" : verdict === "approve" && a.isRefund ? "approve-amount" : "approve").focus();
      // 409: someone decided first (a page whose live socket was down); show what they decided.
      if (e.status === 409) refresh(a.id);
    }
  }

  async function refresh(id) {
    try {
      const found = await fetchRequest(id);
      if (state.selected === id) renderDetail(found.approval, found.turns);
      onApproval("approval.updated", found.approval);
    } catch (e) { /* the error already shown says what went wrong */ }
  }

  // ---------------------------------------------------------------- on the escalation
  let escSeq = 0;

  // The approval requests of the escalation's conversation: filed in the same message (`ref`) or
  // anywhere in the same session (a customer handed to a person who also asked for a refund).
  function belongsTo(record, esc) {
    return (record.ref && record.ref === esc.ref) || (!!record.session_id && record.session_id === esc.session_id);
  }

  async function loadForEscalation(esc) {
    const box = $("esc-approvals");
    const mine = ++escSeq;
    try {
      // Every state, of this conversation only.
      const query = new URLSearchParams({ limit: "200", session_id: esc.session_id });
      const page = await api("GET", "/api/approvals?" + query);
      if (mine !== escSeq) return;
      const items = (page.items || []).map(newest).filter((r) => belongsTo(r, esc)).map(normalizeApproval);
      $("esc-approvals-title").hidden = box.hidden = items.length === 0;
      box.replaceChildren(...items.map((a) => {
        const entry = el("div", "esc-approval");
        const link = el("a", null, a.id + " · " + a.actionLabel + " " + a.orderId + " · " + a.state +
          (a.decision ? " (" + decisionText(a) + ")" : ""));
        link.href = "#" + a.id;
        entry.append(link, auditTable(a.audit));
        return entry;
      }));
    } catch (e) {
      if (mine !== escSeq) return;
      $("esc-approvals-title").hidden = box.hidden = false;
      box.replaceChildren(el("p", "muted", "The approval requests could not be loaded: " + e.message));
    }
  }

  // ---------------------------------------------------------------- wiring
  events.on("connect", () => loadList(false));
  events.on("frame", (frame) => {
    if (frame.type === "approval.created" || frame.type === "approval.updated") {
      onApproval(frame.type, frame.approval || (frame.data && frame.data.approval));
    }
  });
  events.on("escalation", (esc) => loadForEscalation(esc));
  events.on("open-approval", (id) => { if (id !== state.selected || $("approval-panel").hidden) open(id); });
  events.on("tick", renderList);
  events.on("view", (which) => {
    if (which !== "approval" && state.selected) { state.selected = null; renderList(); }
  });

  $("approval-filter").addEventListener("change", () => {
    state.filter = $("approval-filter").value;
    state.cursor = null;
    loadList(false);
  });
  $("approvals-more").addEventListener("click", () => loadList(true));
  $("approve-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const a = state.record;
    if (!a) return;
    let body = {};
    if (a.isRefund) {
      const amount = parseAmount($("approve-amount").value);
      if (amount.error) {
        ctx.showError("Approve: " + amount.error);
        $("approve-amount").focus();
        return;
      }
      body = { amount: amount.value };
    }
    decide("approve", body);
  });
  $("deny-form").addEventListener("submit", (event) => {
    event.preventDefault();
    decide("deny", { reason: $("deny-reason").value }, () => { $("deny-reason").value = ""; });
  });
  $("deny-reason").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("deny-form").requestSubmit();
    }
  });
});
