// The agent console: the escalation queue (live over /ws/agent), one escalation with its transcript
// and facts, and claim / reply / resolve. Plain JavaScript, no framework, no CDN. Every text that
// came from a customer or the server goes in with textContent, never as HTML.
// The approval requests live in console-approvals.js: it registers a part in
// `window.actormeshConsoleParts`, which this page calls with a small context (the API client, the
// error line, and events: the socket's other frames, each (re)connect, the `#APR-…` route).
"use strict";

// ------------------------------------------------------------------ pure helpers (no DOM, no I/O)
const PRIORITIES = ["urgent", "high", "normal", "low"];
const STATUS_TITLES = {
  0: "Gateway unreachable", 400: "Bad request", 401: "Not signed in", 403: "Not an agent",
  404: "Not found", 409: "Conflict", 413: "Too large", 422: "Invalid input", 429: "Too many requests",
  500: "Gateway error", 503: "Unavailable", 504: "Timed out",
};

/** The gateway's error body as one line: "409 Conflict: escalation ESC-… is resolved"; with the
 * seconds its `Retry-After` asks for (429, 503), when to try again: "… (try again in 12 s)". */
function describeError(status, body, retryAfterS) {
  const title = STATUS_TITLES[status] || "Error";
  let detail = "";
  if (body && Array.isArray(body.fields) && body.fields.length) {
    detail = body.fields.map((f) => (f.field ? f.field + ": " : "") + f.message).join("; ");
  } else if (body && typeof body.detail === "string" && body.detail) {
    detail = body.detail;
  } else if (body && Array.isArray(body.detail)) {  // FastAPI's default validation shape
    detail = body.detail.map((d) => (d.loc || []).slice(1).join(".") + ": " + d.msg).join("; ");
  } else if (body && typeof body.error === "string") {
    detail = body.error;
  } else if (typeof body === "string") {
    detail = body;
  }
  const retry = retryAfterS > 0 ? " (try again in " + Math.ceil(retryAfterS) + " s)" : "";
  return (status ? status + " " : "") + title + (detail ? ": " + detail : "") + retry;
}

/** Queue order: priority (urgent first), then age (oldest first), then reference. */
function compareEscalations(a, b) {
  const pa = PRIORITIES.indexOf(a.priority), pb = PRIORITIES.indexOf(b.priority);
  const rank = (p) => (p < 0 ? PRIORITIES.length : p);
  if (rank(pa) !== rank(pb)) return rank(pa) - rank(pb);
  const ta = Date.parse(a.created_at) || 0, tb = Date.parse(b.created_at) || 0;
  if (ta !== tb) return ta - tb;
  return String(a.ref).localeCompare(String(b.ref));
}

/** "just now", "4 min ago", "2 h ago", "3 d ago" from an ISO time, relative to `now` (ms). */
function age(iso, now) {
  const then = Date.parse(iso);
  if (!then) return "";
  const s = Math.max(0, Math.round((now - then) / 1000));
  if (s < 45) return "just now";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}

/** A value inside a fact: a list of line items reads "Laptop Stand ×1, USB-C Hub ×2". */
function factValue(v) {
  if (Array.isArray(v)) return v.map(factValue).join(", ");
  if (v && typeof v === "object") {
    if (v.name !== undefined) return String(v.name) + (v.quantity !== undefined ? " ×" + v.quantity : "");
    return Object.values(v).map(factValue).join(" ");
  }
  return String(v);
}

/** One fact (an order, a tracking record, an action) as a short line of text. */
function factLine(item) {
  if (item === null || item === undefined) return "";
  if (typeof item !== "object") return String(item);
  return Object.entries(item)
    .filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => k.replace(/_/g, " ") + ": " + factValue(v))
    .join(" · ");
}

/** The `sub` (or email) claim of a JWT, read without verifying it (the gateway verifies). */
function tokenSubject(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
    return claims.name || claims.sub || claims.email || null;
  } catch (e) {
    return null;
  }
}

/** The conversation to show: stored turns, plus any agent reply the store has not returned yet. */
function conversation(turns, replies) {
  const shown = turns.map((t) => ({
    kind: t.role === "customer" ? "customer" : t.author ? "person" : "mesh",
    author: t.role === "customer" ? t.customer_email : t.author || "ActorMesh (automatic reply)",
    text: t.text, at: t.created_at,
  }));
  const seen = new Set(shown.filter((t) => t.kind === "person").map((t) => t.author + "\u0000" + t.text));
  (replies || []).forEach((r) => {
    if (!seen.has(r.agent + "\u0000" + r.text)) shown.push({ kind: "person", author: r.agent, text: r.text, at: r.at });
  });
  return shown;
}

/** Milliseconds before loading a list again after a load failed with `status` (0: no answer) on try
 * `attempt` (0-based): 0.5, 1, 2, 4 and 8 s after a 5xx or no answer (a replica warming up, a busy
 * history service), then null (the error stays shown); null at once after a 4xx, which would repeat. */
function reloadDelayMs(status, attempt) {
  if (status > 0 && status < 500) return null;
  return attempt < 5 ? 500 * 2 ** attempt : null;
}

window.actormeshConsole = {
  PRIORITIES, describeError, compareEscalations, age, factLine, tokenSubject, conversation, reloadDelayMs,
};

/** Named events the page's parts talk through (`on("frame", fn)`, `emit("frame", frame)`). */
function hooks() {
  const listeners = {};
  return {
    on(name, fn) { (listeners[name] = listeners[name] || []).push(fn); },
    emit(name, ...args) { return (listeners[name] || []).map((fn) => fn(...args)); },
  };
}

// ------------------------------------------------------------------ the page
document.addEventListener("DOMContentLoaded", () => {
  const $ = (id) => document.getElementById(id);
  const store = window.localStorage;
  const bearerAuth = document.querySelector('meta[name="actormesh-auth"]').content === "bearer";
  const state = {
    token: bearerAuth ? store.getItem("actormesh.agentToken") || "" : "",
    filter: "open",
    items: new Map(),          // ref -> record, for the current filter
    cursor: null,
    selected: null,            // ref
    socket: null, backoff: 500, reconnectTimer: null, pingTimer: null,
  };
  const events = hooks();

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function setStatus(s, text) { $("status").dataset.state = s; $("status").textContent = text; }

  // `kind` says what the message is about, so a later success clears only its own kind of error:
  // "connection" (token, socket, queue) or "escalation" (opening one, claim, reply, resolve).
  function showError(message, kind) {
    state.errorKind = message ? kind || "escalation" : null;
    $("error").textContent = message;
    $("error").hidden = !message;
  }

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  // The gateway's paths ("/api/…", "/ws/agent") resolved next to this page, so the console also works
  // published under a path prefix (an HTTPRoute's pathPrefix strips it before the gateway).
  function gatewayUrl(path) {
    return new URL(path.replace(/^\//, ""), location.href);
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(gatewayUrl(path), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new ApiError(0, describeError(0, "the gateway is not reachable (" + e.message + ")"));
    }
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      if (response.status === 401 && bearerAuth) askForToken();
      // Retry-After in seconds (the gateway never sends the HTTP-date form); NaN when absent.
      const retryAfterS = Number(response.headers.get("Retry-After") || NaN);
      throw new ApiError(response.status, describeError(response.status, data, retryAfterS));
    }
    return data;
  }

  // ---------------------------------------------------------------- who is answering
  function agentName() { return $("agent-name").value.trim(); }

  // Without a key the gateway takes the agent's name from the body (else "local-agent"); with a key
  // the token names the agent, and a body naming someone else is refused.
  function asAgent(body) {
    const name = agentName();
    return !bearerAuth && name ? Object.assign({ agent: name }, body) : body;
  }

  function askForToken() {
    $("token-form").hidden = false;
    if (!state.token) $("signed-in").textContent = "Paste an agent token to sign in.";
  }

  function showIdentity() {
    $("auth-note").hidden = bearerAuth;
    $("token-form").hidden = !bearerAuth;
    $("token").value = state.token;
    const subject = state.token ? tokenSubject(state.token) : null;
    $("signed-in").textContent = bearerAuth
      ? (subject ? "Token for " + subject + ", checking…" : "Paste an agent token to sign in.")
      : "";
    $("name-field").hidden = bearerAuth;
    $("agent-name").value = store.getItem("actormesh.agentName") || "";
  }

  // ---------------------------------------------------------------- the queue
  function renderQueue() {
    const list = $("queue");
    const focusedRef = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.ref : null;
    const records = Array.from(state.items.values()).sort(compareEscalations);
    const now = Date.now();
    list.replaceChildren(...records.map((r) => queueItem(r, now)));
    $("queue-empty").hidden = records.length > 0;
    $("queue-count").textContent = records.length + (state.cursor ? "+" : "") + " " + state.filter;
    $("more").hidden = !state.cursor;
    if (focusedRef) {
      const again = list.querySelector('button[data-ref="' + CSS.escape(focusedRef) + '"]');
      if (again) again.focus();
    }
  }

  function queueItem(r, now) {
    const li = el("li");
    const button = el("button", "esc " + (r.priority || ""));
    button.type = "button";
    button.dataset.ref = r.ref;
    button.setAttribute("aria-current", r.ref === state.selected ? "true" : "false");
    if (r._fresh) { button.classList.add("fresh"); delete r._fresh; }
    const first = el("span", "line");
    first.appendChild(el("span", "prio " + (r.priority || ""), r.priority || "?"));
    first.appendChild(el("span", "ref", r.ref));
    first.appendChild(el("span", "sub", age(r.created_at, now)));
    const customer = r.customer || {};
    const second = el("span", "line sub",
      (customer.email || "unknown customer") + (customer.tier ? " (" + customer.tier + ")" : "") +
      " · " + String(r.reason || "").replace(/_/g, " ") + (r.claimed_by ? " · claimed by " + r.claimed_by : ""));
    const third = el("span", "line", r.summary || "");
    button.append(first, second, third);
    button.addEventListener("click", () => select(r.ref));
    li.appendChild(button);
    return li;
  }

  async function loadQueue(append, attempt = 0) {
    const params = new URLSearchParams({ state: state.filter, limit: "50" });
    if (append && state.cursor) params.set("cursor", state.cursor);
    try {
      const page = await api("GET", "/api/escalations?" + params);
      if (!append) state.items.clear();
      page.items.forEach((r) => state.items.set(r.ref, r));
      state.cursor = page.next_cursor || null;
      renderQueue();
      if (state.errorKind === "connection") showError("");
    } catch (e) {
      const delay = reloadDelayMs(e.status, attempt);
      showError("Loading the queue failed: " + e.message + (delay === null ? "" : " (trying again)"), "connection");
      if (delay !== null) setTimeout(() => loadQueue(append, attempt + 1), delay);
    }
  }

  function onEscalation(kind, record) {
    if (!record || !record.ref) return;
    if (record.state === state.filter) {
      if (kind === "escalation.created" && !state.items.has(record.ref)) {
        record._fresh = true;
        $("announce").textContent = "New " + (record.priority || "") + " escalation " + record.ref;
      }
      state.items.set(record.ref, record);
    } else {
      state.items.delete(record.ref);
    }
    renderQueue();
    if (record.ref === state.selected) refreshSelected(record);
  }

  // ---------------------------------------------------------------- one escalation
  let detailSeq = 0;

  async function select(ref) {
    showView("escalation");
    state.selected = ref;
    if (location.hash !== "#" + ref) history.replaceState(null, "", "#" + ref);
    renderQueue();
    showError("");
    const seq = ++detailSeq;
    try {
      const body = await api("GET", "/api/escalations/" + encodeURIComponent(ref));
      if (seq !== detailSeq) return;   // another one was selected meanwhile
      renderDetail(body.escalation, body.turns || []);
      $("detail-title").focus();
    } catch (e) {
      if (seq !== detailSeq) return;
      $("detail-body").hidden = true;
      $("detail-title").textContent = ref;
      $("detail-state").hidden = $("detail-priority").hidden = true;
      showError(e.message);
    }
  }

  async function refreshSelected(record) {
    const seq = ++detailSeq;
    try {
      const body = await api("GET", "/api/escalations/" + encodeURIComponent(record.ref));
      if (seq === detailSeq) renderDetail(body.escalation, body.turns || []);
    } catch (e) {
      if (seq === detailSeq) showError(e.message);
    }
  }

  function renderDetail(r, turns) {
    state.current = r;
    state.turns = turns;
    $("detail-title").textContent = r.ref;
    $("detail-state").textContent = r.state;
    $("detail-state").className = "badge " + r.state;
    $("detail-priority").textContent = r.priority;
    $("detail-priority").className = "prio " + r.priority;
    $("detail-state").hidden = $("detail-priority").hidden = false;
    $("detail-body").hidden = false;
    $("detail-body").dataset.ref = r.ref;
    $("detail-body").dataset.state = r.state;

    const customer = r.customer || {};
    const rows = [
      ["Customer", (customer.email || "unknown") + (customer.tier ? " · " + customer.tier + " tier" : "")],
      ["Reason", String(r.reason || "").replace(/_/g, " ") +
        (r.reasons && r.reasons.length ? " (" + r.reasons.join("; ") + ")" : "")],
      ["Summary", r.summary],
      ["Session", r.session_id],
      ["Opened", r.created_at ? new Date(r.created_at).toLocaleString() + " (" + age(r.created_at, Date.now()) + ")" : ""],
      ["Claimed by", r.claimed_by ? r.claimed_by + (r.claimed_at ? " at " + new Date(r.claimed_at).toLocaleTimeString() : "") : "nobody yet"],
    ];
    if (r.state === "resolved") rows.push(["Resolved", (r.resolution_note || "(no note)") + (r.resolved_at ? " · " + new Date(r.resolved_at).toLocaleString() : "")]);
    $("summary").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", null, k), el("dd", null, v || "")]));

    const facts = r.facts || {};
    const groups = Object.keys(facts).length ? Object.keys(facts) : ["orders", "tracking", "actions"];
    $("facts").replaceChildren(...groups.map((name) => {
      const box = el("div");
      box.appendChild(el("h4", null, name.replace(/_/g, " ")));
      const items = Array.isArray(facts[name]) ? facts[name] : facts[name] ? [facts[name]] : [];
      if (!items.length) box.appendChild(el("p", "none", "none"));
      else {
        const list = el("ul");
        items.forEach((item) => list.appendChild(el("li", null, factLine(item))));
        box.appendChild(list);
      }
      return box;
    }));

    renderTranscript($("transcript"), turns, r.replies);
    events.emit("escalation", r);

    $("claim").disabled = r.state !== "open";
    $("claim").textContent = r.state === "open" ? "Claim" : r.claimed_by ? "Claimed by " + r.claimed_by : "Claim";
    $("send").disabled = r.state !== "claimed";
    $("reply").disabled = r.state !== "claimed";
    $("resolve").disabled = r.state === "resolved";
    $("note").disabled = r.state === "resolved";
  }

  function renderTranscript(transcript, turns, replies) {
    const shown = conversation(turns, replies);
    transcript.replaceChildren(...shown.map((t) => {
      const node = el("div", "turn " + t.kind);
      const author = t.kind === "person" ? t.author + " (agent)" : t.author;
      node.append(el("span", "author", author), el("span", "text", t.text),
                  el("span", "when", t.at ? new Date(t.at).toLocaleTimeString() : ""));
      return node;
    }));
    if (!shown.length) transcript.appendChild(el("p", "muted", "No stored turns."));
    transcript.scrollTop = transcript.scrollHeight;
  }

  // The right-hand side shows one escalation or one approval request.
  function showView(which) {
    $("escalation-panel").hidden = which !== "escalation";
    $("approval-panel").hidden = which !== "approval";
    if (which !== "escalation" && state.selected) {
      state.selected = null;
      renderQueue();
    }
    events.emit("view", which);
  }

  async function act(action, body, done) {
    const r = state.current;
    if (!r) return;
    showError("");
    try {
      const updated = await api("POST", "/api/escalations/" + encodeURIComponent(r.ref) + "/" + action, body);
      // Show the new state at once (buttons enabled before `done` moves the focus); the transcript
      // follows with the refresh below.
      if (updated.ref === state.selected) renderDetail(updated, state.turns || []);
      if (done) done();
      // The socket will also announce the change; applying the answer now keeps the page honest
      // when the socket is down.
      onEscalation("escalation.updated", updated);
    } catch (e) {
      showError(action.charAt(0).toUpperCase() + action.slice(1) + " failed: " + e.message);
    }
  }

  // ---------------------------------------------------------------- live updates
  function connect() {
    clearTimeout(state.reconnectTimer);
    const url = gatewayUrl("/ws/agent");
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    // Browsers cannot set headers on a WebSocket: the token travels as a subprotocol, never in the URL.
    const protocols = state.token ? ["actormesh.v1", "actormesh.bearer." + state.token] : ["actormesh.v1"];
    setStatus("connecting", "connecting…");
    const ws = new WebSocket(url, protocols);
    let opened = false;
    state.socket = ws;
    ws.onopen = () => {
      opened = true;
      state.backoff = 500;
      setStatus("online", "live");
      loadQueue(false);   // whatever changed while the socket was down
      events.emit("connect");
      clearInterval(state.pingTimer);
      state.pingTimer = setInterval(() => {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ping" }));
      }, 25000);
    };
    ws.onmessage = (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (frame.type === "connected" && frame.agent) {
        $("signed-in").textContent = bearerAuth ? "Signed in as " + frame.agent
                                                : "Answering as " + (agentName() || frame.agent);
      } else if (frame.type === "escalation.created" || frame.type === "escalation.updated") {
        onEscalation(frame.type, frame.escalation || (frame.data && frame.data.escalation));
      } else if (typeof frame.type === "string") {
        events.emit("frame", frame);
      }
    };
    ws.onclose = (event) => {
      if (state.socket !== ws) return;   // replaced on purpose (new token)
      clearInterval(state.pingTimer);
      if (event.code === 4401) {
        showError("Your token expired: paste a fresh one.", "connection");
        signedOut();
        return;
      }
      if (opened) { retryLater(); return; }
      explainRefusal().then((refused) => {
        if (state.socket !== ws) return;
        if (refused) signedOut(); else retryLater();
      });
    };
  }

  function retryLater() {
    setStatus("offline", "offline, retrying in " + Math.round(state.backoff / 100) / 10 + " s");
    state.reconnectTimer = setTimeout(connect, state.backoff);
    state.backoff = Math.min(state.backoff * 2, 8000);
  }

  // Refused for who we are (401/403): asking again with the same credentials cannot help, so the
  // page waits for a new token instead of retrying.
  function signedOut() {
    setStatus("offline", "not signed in");
    $("signed-in").textContent = bearerAuth ? "Not signed in." : "";
    if (bearerAuth) askForToken();
  }

  // A browser does not tell a page why a WebSocket handshake failed; the same question over HTTP
  // gets the gateway's answer (401: no or bad token, 403: not an agent's token).
  // True when the gateway refused who we are (then retrying is pointless).
  async function explainRefusal() {
    if (bearerAuth && !state.token) {
      showError("The live queue needs an agent token: paste one above.", "connection");
      return true;
    }
    try {
      await api("GET", "/api/escalations?limit=1");
      return false;   // HTTP works: the socket failed for another reason, try again
    } catch (e) {
      showError("The gateway refused the console: " + e.message, "connection");
      return e.status === 401 || e.status === 403;
    }
  }

  function reconnect() {
    if (state.socket) { const old = state.socket; state.socket = null; old.close(); }
    state.backoff = 500;
    connect();
  }

  // ---------------------------------------------------------------- wiring
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token").value.trim();
    store.setItem("actormesh.agentToken", state.token);
    showIdentity();
    showError("");
    reconnect();
  });
  $("token-clear").addEventListener("click", () => {
    state.token = "";
    store.removeItem("actormesh.agentToken");
    showIdentity();
    reconnect();
  });
  $("agent-name").addEventListener("change", () => {
    store.setItem("actormesh.agentName", agentName());
    $("signed-in").textContent = agentName() ? "Answering as " + agentName() : "";
  });
  $("state-filter").addEventListener("change", () => {
    state.filter = $("state-filter").value;
    state.cursor = null;
    loadQueue(false);
  });
  $("more").addEventListener("click", () => loadQueue(true));
  $("claim").addEventListener("click", () => act("claim", asAgent({}), () => $("reply").focus()));
  // One key per reply: sending the same text again after a failure (a timeout, a 503 whose reply may
  // have been stored) reuses it, so the customer never reads the reply twice.
  let unsent = null;
  function replyKey(ref, text) {
    if (!unsent || unsent.ref !== ref || unsent.text !== text) {
      const bytes = crypto.getRandomValues(new Uint8Array(12));
      const id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
      unsent = { ref, text, id };
    }
    return unsent.id;
  }
  $("reply-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("reply").value;
    const body = asAgent({ text, reply_id: replyKey(state.selected, text) });
    act("reply", body, () => { $("reply").value = ""; unsent = null; });
  });
  $("reply").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("reply-form").requestSubmit();
    }
  });
  $("resolve-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act("resolve", asAgent({ note: $("note").value }), () => { $("note").value = ""; });
  });
  // `#ESC-…` opens an escalation, `#APR-…` an approval request (links an agent can share).
  function route() {
    const target = decodeURIComponent(location.hash.slice(1));
    if (!target) return;
    if (target.startsWith("APR-")) events.emit("open-approval", target);
    else if (target !== state.selected || $("escalation-panel").hidden) select(target);
  }
  window.addEventListener("hashchange", route);
  setInterval(() => { renderQueue(); events.emit("tick"); }, 30000);   // keeps the ages fresh

  const parts = window.actormeshConsoleParts || [];
  parts.forEach((mount) => mount({
    $, el, api, events, showError, showView, asAgent, renderTranscript, reloadDelayMs,
    announce: (text) => { $("announce").textContent = text; },
    currentEscalation: () => (state.selected ? state.current : null),
  }));
  showIdentity();
  connect();
  route();
});
