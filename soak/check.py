"""The soak's verdict, computed from what each side recorded — never from what the soak expects.

- conversations (what the customers saw), the history store's SQLite file (what was stored),
  the results seen on the wire (what was answered and how often), the mock APIs' state (which side
  effects really happened) and the DLQ (what was given up on, and why).

Definitions:
- accepted: a gateway took the message (200, or 504 with its message id);
- answered: the customer got the result (in the reply, or later from `GET /api/messages/{id}`);
- stored: the history store holds the agent's turn;
- lost: accepted, never answered and never stored;
- duplicated: one message answered with two different results, or one customer message (one
  session) processed as two messages (two agent turns in the session);
- side_effects_wrong: an effect applied twice, an effect with no accepted conversation behind it,
  an answer reporting an effect the APIs do not have, or a refund request or note (a new record each
  time) asked for and not done.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actormesh_runtime.actors.execution_coordinator import idempotency_key
from actormesh_runtime.bus.dlq import StoredDeadLetter
from actormesh_runtime.envelope import ActionStatus, ActionType

from .mix import SIDE_EFFECTS
from .traffic import Conversation

MESSAGE_ID = re.compile(r"msg-[0-9a-f]{32}")
RECORD_ACTION = {
    "cancellation_request": ActionType.CANCEL_ORDER,
    "return_label": ActionType.CREATE_RETURN_LABEL,
    "refund_request": ActionType.CREATE_REFUND_REQUEST,
    "note": ActionType.ADD_NOTE,
}

ALWAYS_NEW = frozenset({ActionType.CREATE_REFUND_REQUEST, ActionType.ADD_NOTE})
"""Side effects that create a record each time (unlike cancelling or returning an order, done once)."""


def stored_turns(db: Path) -> list[tuple[str, str, str]]:
    """(session_id, message_id, role) of every stored turn; read-only, beside the live writer."""
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        return list(conn.execute("SELECT session_id, message_id, role FROM turns"))


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


@dataclass
class Verdict:
    n: int = 0
    over_ws: int = 0
    accepted: int = 0
    answered: int = 0
    answered_late: int = 0
    stored: int = 0
    lost: int = 0
    refused: int = 0
    duplicated: int = 0
    resent: int = 0
    side_effects_wrong: int = 0
    http_errors: int = 0
    wrong_answers: int = 0
    error_answers: int = 0
    latency_ms: dict[str, dict[str, float | None]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    dlq: list[str] = field(default_factory=list)
    dlq_unexplained: int = 0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.side_effects_wrong or self.http_errors)


def judge(
    conversations: list[Conversation],
    turns: list[tuple[str, str, str]],
    seen: dict[str, list[str]],
    mock_state: dict[str, Any],
    dead_letters: list[StoredDeadLetter],
) -> Verdict:
    v = Verdict(n=len(conversations), over_ws=sum(1 for c in conversations if c.channel == "ws"))
    accepted = [c for c in conversations if c.accepted]
    v.accepted = len(accepted)
    v.refused = v.n - v.accepted - sum(1 for c in conversations if c.errors)
    v.answered = sum(1 for c in accepted if c.result is not None)
    v.answered_late = sum(1 for c in accepted if c.answered_via == "fetch")
    agent_turns = {m for _, m, role in turns if role == "agent"}
    v.stored = sum(1 for c in accepted if c.message_id in agent_turns)
    for c in accepted:
        if c.result is None and c.message_id not in agent_turns:
            v.lost += 1
            v.problems.append(f"lost: {c.session_id} {c.message_id} ({c.kind.name})")
    for c in conversations:
        for error in c.errors:
            v.http_errors += 1
            v.problems.append(f"http error: {c.session_id}: {error}")
    _duplicates(v, conversations, turns, seen)
    _answers(v, accepted)
    _side_effects(v, accepted, mock_state)
    _dead_letters(v, accepted, dead_letters)
    for phase in ("calm", "chaos"):
        values = [c.latency_ms for c in conversations if c.phase == phase and c.latency_ms is not None]
        answered = [x for x in values if x is not None]
        v.latency_ms[phase] = {"p50": percentile(answered, 0.5), "p99": percentile(answered, 0.99),
                               "n": float(len(answered))}  # fmt: skip
    return v


def _duplicates(
    v: Verdict,
    conversations: list[Conversation],
    turns: list[tuple[str, str, str]],
    seen: dict[str, list[str]],
) -> None:
    for message_id, prints in seen.items():
        if len(set(prints)) > 1:
            v.duplicated += 1
            v.problems.append(f"duplicated: {message_id} answered {len(prints)}x with different results")
        elif len(prints) > 1:
            v.resent += 1
    for c in conversations:
        if c.responses > 1:
            v.duplicated += 1
            v.problems.append(
                f"duplicated: {c.session_id} got {c.responses} response frames on its WebSocket"
            )
    per_session = Counter(s for s, _, role in turns if role == "agent")
    for c in conversations:
        if per_session.get(c.session_id, 0) > 1:
            v.duplicated += 1
            v.problems.append(
                f"duplicated: session {c.session_id} sent once, processed {per_session[c.session_id]}x "
                f"(submissions: {c.submissions}, refusals: {c.refusals})"
            )


def _answers(v: Verdict, accepted: list[Conversation]) -> None:
    """An answer on the error path is graceful but not what was asked: counted, not failed."""
    for c in accepted:
        result = c.result
        if result is None:
            continue
        if "error" in result.get("flags", []):
            v.error_answers += 1
            continue
        asked = {a.value for a in c.kind.asks}
        reported = {a["type"] for a in result.get("actions", [])}
        if result.get("intent") != c.kind.intent.value or not asked <= reported:
            v.wrong_answers += 1
            v.problems.append(
                f"wrong answer: {c.session_id} ({c.kind.name}) intent={result.get('intent')} "
                f"actions={sorted(reported)} flags={result.get('flags')}"
            )


def _side_effects(v: Verdict, accepted: list[Conversation], state: dict[str, Any]) -> None:
    replies: dict[str, int] = state["idempotency"]
    by_message: dict[str, Counter[str]] = defaultdict(Counter)
    known = {c.message_id for c in accepted}
    for record in state["records"]:
        found = MESSAGE_ID.search(str(record.get("reason", "")) + " " + str(record.get("text", "")))
        message_id = found.group(0) if found else "<none>"
        by_message[message_id][record["kind"]] += 1
        if message_id not in known:
            v.side_effects_wrong += 1
            v.problems.append(f"side effect without an accepted conversation: {record['id']} {message_id}")
    for message_id, kinds in by_message.items():
        for kind, count in kinds.items():
            if count > 1:
                v.side_effects_wrong += 1
                v.problems.append(f"side effect applied {count}x: {kind} for {message_id}")
    applied = sum(1 for status in replies.values() if status == 201)
    if state["effects"] != applied:
        v.side_effects_wrong += 1
        v.problems.append(f"{state['effects']} effects but {applied} successful idempotent requests")
    for c in accepted:
        if c.result is None or c.message_id is None:
            continue
        _asked_and_not_done(v, c, by_message[c.message_id])
        for action in c.result.get("actions", []):
            kind = ActionType(action["type"])
            if kind not in SIDE_EFFECTS or action["status"] not in (
                ActionStatus.DONE,
                ActionStatus.PENDING_REVIEW,
            ):
                continue
            key = idempotency_key(c.message_id, kind, action.get("order_id"))
            if replies.get(key) != 201:
                v.side_effects_wrong += 1
                v.problems.append(
                    f"answer says {kind.value} {action['status']} but the API has {replies.get(key)}"
                )


def _asked_and_not_done(v: Verdict, c: Conversation, records: Counter[str]) -> None:
    """A refund request or a note is a new record every time it is asked for (never refused by the
    state of an order), so a conversation that asked and was answered normally must have one."""
    if c.result is None or "error" in c.result.get("flags", []):
        return  # the error path answers without acting: counted as an error answer, not here
    reported = {a["type"]: a["status"] for a in c.result.get("actions", [])}
    for kind, action in RECORD_ACTION.items():
        if action not in ALWAYS_NEW or action not in c.kind.asks:
            continue
        if records[kind] == 0 and reported.get(action.value) not in (
            ActionStatus.DONE,
            ActionStatus.PENDING_REVIEW,
        ):
            v.side_effects_wrong += 1
            v.problems.append(
                f"asked for {action.value} but not done: {c.message_id} ({c.kind.name}) "
                f"status={reported.get(action.value)}"
            )


def _dead_letters(v: Verdict, accepted: list[Conversation], records: list[StoredDeadLetter]) -> None:
    """Each dead letter must belong to a conversation whose customer still got an answer."""
    answered = {c.message_id for c in accepted if c.result is not None}
    reasons: Counter[str] = Counter()
    for item in records:
        record = item.record
        reason = re.sub(r"msg-[0-9a-f]{32}|\d+(\.\d+)?", "#", record.reason)[:120]
        reasons[f"{record.actor.value}: {reason}"] += 1
        if record.message_id not in answered:
            v.dlq_unexplained += 1
            v.problems.append(
                f"dead letter {item.id} of an unanswered message: {record.message_id} {record.reason}"
            )
    v.dlq = [f"{count} x {reason}" for reason, count in reasons.most_common()]
