"""A mesh whose nine actors run in three co-located groups (`spec.actors.groups`, the layout
`config/samples/grouped.yaml` and `make bench`'s `mesh-groups` use) reaches Ready and answers a chat
with real order data: each group's process connects as its own NATS user, with its members' flows."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.e2e import mesh as m
from tests.e2e.cluster import E2ECluster

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

GROUPS = yaml.safe_load((m.REPO / "config" / "samples" / "grouped.yaml").read_text())["spec"]["actors"][
    "groups"
]


def test_grouped_mesh_is_ready_and_answers(
    cluster: E2ECluster, operator: dict[str, Any], namespace: str
) -> None:
    if not cluster.sealed_node:
        pytest.skip("only the sealed node routes the Service range to the host")
    # The minimal sample (anonymous gateway: no token to mint) with the grouped sample's groups, each
    # at one replica so the single node holds it.
    groups = [{"name": g["name"], "actors": g["actors"]} for g in GROUPS]
    name = m.apply_sample(cluster, namespace, actors={"groups": groups})
    mesh = m.wait_mesh_ready(cluster, namespace, name)
    assert mesh["status"]["actorsReady"] == "9/9", m.dumps(mesh["status"])
    actor_pods = [
        p for p in cluster.pods(namespace) if p["metadata"]["labels"].get("app.kubernetes.io/component")
        in {g["name"] for g in groups}
    ]  # fmt: skip
    assert sorted(p["metadata"]["labels"]["app.kubernetes.io/component"] for p in actor_pods) == sorted(
        g["name"] for g in groups
    )
    assert not [p for p in cluster.pods(namespace) if "decision-router" in p["metadata"]["name"]]
    result = m.chat(m.gateway_url(cluster, namespace, name))
    assert m.ORDER_TRACKING in result["response"], result["response"]
