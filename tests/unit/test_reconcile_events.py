"""The Events the operator posts itself: a valid core/v1 Event about the mesh, message bounded."""

from __future__ import annotations

from datetime import UTC, datetime

from actormesh_operator.reconcile.events import MAX_MESSAGE, event_body

MESH = {
    "apiVersion": "actormesh.io/v1alpha1",
    "kind": "ActorMesh",
    "metadata": {"name": "demo", "namespace": "shop", "uid": "u-1", "resourceVersion": "42"},
}


def test_an_event_refers_to_the_mesh() -> None:
    body = event_body(
        MESH,
        "Normal",
        "Resumed",
        "restored",
        component="actormesh-operator",
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert body["involvedObject"] == {
        "apiVersion": "actormesh.io/v1alpha1",
        "kind": "ActorMesh",
        "name": "demo",
        "namespace": "shop",
        "uid": "u-1",
        "resourceVersion": "42",
    }
    assert body["metadata"] == {"generateName": "demo.", "namespace": "shop"}
    assert (body["type"], body["reason"], body["message"]) == ("Normal", "Resumed", "restored")
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2026-01-01T00:00:00Z"


def test_a_long_message_is_cut_to_what_the_api_server_accepts() -> None:
    body = event_body(MESH, "Normal", "Applied", "x" * 5000, component="c", now=datetime.now(UTC))
    assert len(body["message"]) == MAX_MESSAGE
    assert body["message"].endswith("...")
