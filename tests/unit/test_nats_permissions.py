"""The NATS permission table (`catalog.nats_permissions`): shape and the rules that matter.

A real nats-server enforcing it on the runtime's own code paths is in
tests/integration/test_nats_permissions_server.py.
"""

from __future__ import annotations

import pytest

from actormesh_runtime.catalog import (
    ACTORS,
    ADMIN_USER,
    DEFAULT_ROUTE,
    GATEWAY_USER,
    HISTORY_USER,
    NATS_USERS,
    ActorName,
    Subjects,
    inbox_prefix,
    nats_permissions,
)

SUBJECTS = Subjects("demo")


def test_one_user_per_actor_plus_gateway_history_and_admin() -> None:
    assert set(NATS_USERS) == {a.name.value for a in ACTORS} | {GATEWAY_USER, HISTORY_USER, ADMIN_USER}
    assert len(NATS_USERS) == len(set(NATS_USERS))


@pytest.mark.parametrize("direct_hops", [False, True], ids=["hops-via-stream", "direct-hops"])
@pytest.mark.parametrize("user", NATS_USERS)
def test_every_user_subscribes_only_to_its_own_inbox_and_named_subjects(user: str, direct_hops: bool) -> None:
    perms = nats_permissions(SUBJECTS, user, direct_hops=direct_hops)
    assert perms.user == user
    assert perms.inbox_prefix == inbox_prefix(user) == f"_INBOX.{user}"
    assert f"{perms.inbox_prefix}.>" in perms.subscribe
    for subject in perms.subscribe + perms.publish:
        assert subject not in {">", "*", "_INBOX.>", "$JS.API.>", "actormesh.>"}, subject
        assert subject.startswith(
            ("actormesh.demo.", "$JS.API.", "$JS.ACK.ACTORMESH-demo.", f"_INBOX.{user}.")
        )


def test_the_gateway_submits_only_to_the_first_step() -> None:
    perms = nats_permissions(SUBJECTS, GATEWAY_USER)
    actor_subjects = [s for s in perms.publish if s.startswith("actormesh.demo.actor.")]
    assert actor_subjects == [SUBJECTS.actor(DEFAULT_ROUTE[0])]
    assert SUBJECTS.history_query in perms.publish
    assert not any(s.startswith(("$JS.ACK", "$JS.API.CONSUMER")) for s in perms.publish)


def test_an_actor_pulls_and_acks_only_its_own_consumer() -> None:
    perms = nats_permissions(SUBJECTS, ActorName.CONTEXT_RETRIEVER.value)
    consumers = {s.split(".")[-1] for s in perms.publish if s.startswith("$JS.API.CONSUMER.MSG.NEXT.")}
    assert consumers == {"context_retriever"}
    assert "$JS.ACK.ACTORMESH-demo.context_retriever.>" in perms.publish
    assert SUBJECTS.dlq(ActorName.CONTEXT_RETRIEVER) in perms.publish
    assert SUBJECTS.dlq(ActorName.DECISION_ROUTER) not in perms.publish
    assert SUBJECTS.history_query not in perms.publish + perms.subscribe
    assert not perms.allow_responses


def test_who_reads_the_replies() -> None:
    """Replies carry customers' answers: an actor (or the history service) that could subscribe to them
    would read every conversation. Actors and history subscribe to nothing but their own inbox and what
    history answers; replies are read only by the gateway and the CLI (`admin`, `actormesh ask`)."""
    readers = {u for u in NATS_USERS if SUBJECTS.any_reply in nats_permissions(SUBJECTS, u).subscribe}
    assert readers == {GATEWAY_USER, ADMIN_USER}
    for actor in ACTORS:
        perms = nats_permissions(SUBJECTS, actor.name.value)
        assert perms.subscribe == (f"{inbox_prefix(actor.name.value)}.>",), actor.name


def test_only_history_answers_history_queries() -> None:
    answering = [u for u in NATS_USERS if SUBJECTS.history_query in nats_permissions(SUBJECTS, u).subscribe]
    assert answering == [HISTORY_USER]
    assert nats_permissions(SUBJECTS, HISTORY_USER).allow_responses


def test_only_admin_reads_and_deletes_dead_letters() -> None:
    reading = [
        u
        for u in NATS_USERS
        if any(
            s.startswith(f"$JS.API.STREAM.MSG.GET.{SUBJECTS.dlq_stream}")
            for s in nats_permissions(SUBJECTS, u).publish
        )
    ]
    assert reading == [ADMIN_USER]


def test_unknown_component_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown NATS component 'keda'"):
        nats_permissions(SUBJECTS, "keda")


def test_escalation_subjects_go_to_exactly_who_needs_them() -> None:
    def users(where: str, subject: str) -> set[str]:
        return {u for u in NATS_USERS if subject in getattr(nats_permissions(SUBJECTS, u), where)}

    # Only the single writer announces; gateways deliver the events to sockets.
    assert users("publish", SUBJECTS.escalations_created) == {HISTORY_USER}
    assert users("publish", SUBJECTS.escalations_updated) == {HISTORY_USER}
    assert users("subscribe", SUBJECTS.escalations_created) == {GATEWAY_USER}
    assert users("subscribe", SUBJECTS.escalations_updated) == {GATEWAY_USER}
    # Follow-ups and the queue: two actors ask, the history service answers.
    asking = {ActorName.CONTEXT_RETRIEVER.value, ActorName.ESCALATION_ROUTER.value}
    assert users("publish", SUBJECTS.escalations_lookup) == asking
    assert users("subscribe", SUBJECTS.escalations_lookup) == {HISTORY_USER}
    # What the store holds for a message: the last step asks (a step run again answers that).
    assert users("publish", SUBJECTS.stored_answers) == {ActorName.RESPONSE_AGGREGATOR.value}
    assert users("subscribe", SUBJECTS.stored_answers) == {HISTORY_USER}
    # Everyone may provision the event stream, as the other streams (open_bus creates all three).
    for user in NATS_USERS:
        assert (
            f"$JS.API.STREAM.CREATE.{SUBJECTS.escalations_stream}" in nats_permissions(SUBJECTS, user).publish
        )


def test_approved_actions_run_only_in_execution_coordinator() -> None:
    def pulling(consumer: str) -> set[str]:
        next_msg = f"$JS.API.CONSUMER.MSG.NEXT.{SUBJECTS.stream}.{consumer}"
        return {u for u in NATS_USERS if next_msg in nats_permissions(SUBJECTS, u).publish}

    assert pulling(SUBJECTS.approvals_executor_consumer) == {ActorName.EXECUTION_COORDINATOR.value}
    assert pulling(SUBJECTS.approvals_outcome_consumer) == {HISTORY_USER}
    publishing = {
        u for u in NATS_USERS if SUBJECTS.approvals_execute in nats_permissions(SUBJECTS, u).publish
    }
    assert publishing == {HISTORY_USER}  # only a recorded approval becomes a command
    reporting = {u for u in NATS_USERS if SUBJECTS.approvals_outcome in nats_permissions(SUBJECTS, u).publish}
    assert reporting == {ActorName.EXECUTION_COORDINATOR.value}


# --- direct hops (DIRECT_HOPS, spec.actors.directHops) ----------------------------------------------

OTHER_USERS = [GATEWAY_USER, HISTORY_USER, ADMIN_USER]


def _acks(consumer: str) -> str:
    return f"$JS.ACK.{SUBJECTS.stream}.{consumer}.>"


def test_without_direct_hops_no_actor_reaches_a_direct_subject_or_another_actors_acks() -> None:
    """Least privilege when the mesh does not use direct hops (the default)."""
    for user in NATS_USERS:
        perms = nats_permissions(SUBJECTS, user)
        assert not [s for s in perms.publish + perms.subscribe if s.startswith("actormesh.demo.direct.")]
    for actor in ActorName:
        acks = {s for s in nats_permissions(SUBJECTS, actor.value).publish if s.startswith("$JS.ACK.")}
        expected = {_acks(SUBJECTS.consumer(actor))}
        if actor is ActorName.EXECUTION_COORDINATOR:
            expected.add(_acks(SUBJECTS.approvals_executor_consumer))
        assert acks == expected, actor


@pytest.mark.parametrize("actor", list(ActorName), ids=[a.value for a in ActorName])
def test_direct_hops_add_exactly_the_direct_subjects_and_no_other_actors_acks(actor: ActorName) -> None:
    """A host hands the envelope (or a sealed settle of a chain's first delivery) to any actor, and
    receives on its own direct subject only; it still acks only its own consumer's deliveries."""
    off = nats_permissions(SUBJECTS, actor.value)
    on = nats_permissions(SUBJECTS, actor.value, direct_hops=True)
    assert set(off.publish) <= set(on.publish)
    assert set(on.publish) - set(off.publish) == {SUBJECTS.any_direct}
    assert {s for s in on.publish if s.startswith("$JS.ACK.")} == {
        s for s in off.publish if s.startswith("$JS.ACK.")
    }
    assert len(on.publish) == len(set(on.publish))
    assert on.subscribe == (*off.subscribe, SUBJECTS.direct(actor))
    # Still nothing more: no other actor's consumer to pull from, no replies, no history answers.
    pulls = {s for s in on.publish if s.startswith("$JS.API.CONSUMER.MSG.NEXT.")}
    assert pulls == {s for s in off.publish if s.startswith("$JS.API.CONSUMER.MSG.NEXT.")}
    assert SUBJECTS.any_reply not in on.subscribe
    assert not on.allow_responses


@pytest.mark.parametrize("user", OTHER_USERS)
def test_direct_hops_leave_the_gateway_history_and_admin_as_they_were(user: str) -> None:
    assert nats_permissions(SUBJECTS, user, direct_hops=True) == nats_permissions(SUBJECTS, user)


def test_with_direct_hops_each_actors_direct_subject_has_one_reader() -> None:
    readers = {
        a.value: [
            u
            for u in NATS_USERS
            if SUBJECTS.direct(a) in nats_permissions(SUBJECTS, u, direct_hops=True).subscribe
        ]
        for a in ActorName
    }
    assert readers == {a.value: [a.value] for a in ActorName}
