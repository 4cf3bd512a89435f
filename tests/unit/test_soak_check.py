"""The soak's judge is only as good as the breakage it notices: each verdict field is shown to count
a loss, a duplicate and a wrong side effect it is given (no servers: recorded data only)."""

from __future__ import annotations

from typing import Any

from soak.check import judge
from soak.faults import KINDS, FaultInjector
from soak.mix import MIX
from soak.traffic import Conversation

from actormesh_runtime.actors.execution_coordinator import idempotency_key
from actormesh_runtime.bus.dlq import DeadLetter, StoredDeadLetter
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import ActionType

REFUND = next(k for k in MIX if k.name == "refund")
GENERAL = next(k for k in MIX if k.name == "general")


def _mid(n: int) -> str:
    return f"msg-{n:032x}"


def _answered(seq: int, kind: Any = GENERAL, actions: list[dict[str, Any]] | None = None) -> Conversation:
    c = Conversation(seq, kind, f"soak-{seq:06d}", "chaos", started=0.0, finished=0.1, message_id=_mid(seq))
    c.result = {
        "message_id": c.message_id,
        "intent": kind.intent.value,
        "actions": actions or [],
        "flags": [],
    }
    c.answered_via = "reply"
    return c


def _refund(seq: int) -> tuple[Conversation, dict[str, Any], str]:
    action = {"type": "create_refund_request", "order_id": "ORD-30001", "status": "pending_review"}
    c = _answered(seq, REFUND, [action])
    record = {"id": f"RFR-{seq:05d}", "kind": "refund_request",
              "reason": f"Customer request via chat (message {c.message_id})"}  # fmt: skip
    return c, record, idempotency_key(_mid(seq), ActionType.CREATE_REFUND_REQUEST, "ORD-30001")


def _state(records: list[dict[str, Any]], keys: list[str], effects: int | None = None) -> dict[str, Any]:
    return {"records": records, "idempotency": dict.fromkeys(keys, 201),
            "effects": len(keys) if effects is None else effects, "orders": {}}  # fmt: skip


def _turns(conversations: list[Conversation]) -> list[tuple[str, str, str]]:
    return [(c.session_id, c.message_id or "", "agent") for c in conversations]


def test_a_clean_run_is_ok() -> None:
    general = _answered(0)
    refund, record, key = _refund(1)
    verdict = judge([general, refund], _turns([general, refund]), {}, _state([record], [key]), [])
    assert verdict.ok, verdict.problems
    assert (verdict.answered, verdict.stored, verdict.lost) == (2, 2, 0)


def test_an_accepted_conversation_neither_answered_nor_stored_is_lost() -> None:
    lost = _answered(0)
    lost.result = None
    verdict = judge([lost], [], {}, _state([], []), [])
    assert verdict.lost == 1
    assert not verdict.ok


def test_two_different_answers_or_one_message_processed_twice_are_duplicates() -> None:
    c = _answered(0)
    twice = judge([c], _turns([c]), {c.message_id or "": ["a", "b"]}, _state([], []), [])
    assert twice.duplicated == 1
    resent = judge([c], _turns([c]), {c.message_id or "": ["a", "a"]}, _state([], []), [])
    assert (resent.duplicated, resent.resent) == (0, 1), "the same answer sent again is not a duplicate"
    second_turn = [*_turns([c]), (c.session_id, _mid(99), "agent")]
    assert judge([c], second_turn, {}, _state([], []), []).duplicated == 1


def test_a_side_effect_applied_twice_or_missing_or_orphaned_is_wrong() -> None:
    refund, record, key = _refund(1)
    twice = judge([refund], _turns([refund]), {}, _state([record, {**record, "id": "RFR-9"}], [key], 2), [])
    assert twice.side_effects_wrong >= 1
    missing = judge([refund], _turns([refund]), {}, _state([], []), [])
    assert missing.side_effects_wrong == 1, "the answer says pending_review but the API has nothing"
    orphan = {**record, "reason": f"Customer request via chat (message {_mid(77)})"}
    assert (
        judge([refund], _turns([refund]), {}, _state([record, orphan], [key, "x"]), []).side_effects_wrong
        == 1
    )


def test_a_dead_letter_of_an_unanswered_message_is_unexplained() -> None:
    c = _answered(0)
    letter = DeadLetter(actor=ActorName.CONTEXT_RETRIEVER, reason="boom", permanent=True, deliveries=1,
                        message_id=_mid(5))  # fmt: skip
    verdict = judge([c], _turns([c]), {}, _state([], []), [StoredDeadLetter(id=1, record=letter)])
    assert verdict.dlq_unexplained == 1
    assert verdict.dlq == ["1 x context_retriever: boom"]


def test_the_same_seed_plans_the_same_faults_at_the_same_conversations() -> None:
    def plan(seed: int) -> tuple[list[str], list[int]]:
        injector = FaultInjector(mesh=None, seed=seed, per_kind=3)  # type: ignore[arg-type]
        return injector._bag(), injector.positions(100, 1000)

    kinds, positions = plan(7)
    assert plan(7) == (kinds, positions)
    assert plan(8) != (kinds, positions)
    assert sorted(kinds) == sorted(KINDS * 3)
    assert positions == sorted(positions)
    assert positions[0] >= 100
    assert positions[-1] < 1000


def test_a_refund_or_note_asked_for_and_not_done_is_wrong() -> None:
    skipped = _answered(
        3, REFUND, [{"type": "create_refund_request", "order_id": "ORD-30001", "status": "skipped"}]
    )
    silent = _answered(4, REFUND, [])
    errored = _answered(5, REFUND, [])
    errored.result = {**(errored.result or {}), "flags": ["error"]}
    verdict = judge([skipped, silent, errored], _turns([skipped, silent, errored]), {}, _state([], []), [])
    assert verdict.side_effects_wrong == 2, verdict.problems
    assert verdict.error_answers == 1, "the error path is counted as such, not as a missing effect"
    refund, record, key = _refund(6)
    done = judge([refund], _turns([refund]), {}, _state([record], [key]), [])
    assert done.side_effects_wrong == 0, done.problems
