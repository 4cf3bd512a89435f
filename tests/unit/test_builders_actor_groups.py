"""`spec.actors.groups`: one Deployment per group running `actormesh actor A,B,...`, with the union of
its members' needs (Secrets, ConfigMap keys, NATS permissions, network flows), its own HPA, ScaledObject
and PDB, and member labels; ungrouped actors are untouched, and dropping a group prunes its children."""

from __future__ import annotations

from typing import Any

import pytest

from actormesh_operator.api.actors import RESERVED_COMPONENTS, RESERVED_GROUP_NAMES
from actormesh_operator.builders import labels, referenced_secrets
from actormesh_operator.builders.generated import generated_secrets
from actormesh_operator.builders.nats import password_env, user_permissions
from actormesh_operator.reconcile.diff import select_prunable
from actormesh_runtime.catalog import ACTORS, NATS_USERS, Subjects, nats_permissions
from tests.unit.builder_helpers import children, container, env_of, index, make_mesh

ROUTERS = {"name": "routers", "actors": ["escalationRouter", "decisionRouter"]}
LLM = {"model": "gpt-4o-mini", "apiKeySecretRef": {"name": "llm", "key": "api-key"}}


def _grouped(*groups: dict[str, Any], **spec: Any) -> dict[str, Any]:
    actors = {**spec.pop("actors", {}), "groups": list(groups)}
    return {**spec, "actors": actors}


def _deployments(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == "Deployment"}


def test_a_group_replaces_its_members_deployments_with_one() -> None:
    deployments = _deployments(children(_grouped(ROUTERS)))
    assert "demo-routers" in deployments
    assert "demo-decision-router" not in deployments
    assert "demo-escalation-router" not in deployments
    assert "demo-intent-analyzer" in deployments
    # Catalog order, whatever the spec's: reordering the list does not roll the pods.
    assert container(deployments["demo-routers"])["args"] == ["actor", "decision_router,escalation_router"]


def test_without_groups_every_actor_has_its_own_deployment() -> None:
    deployments = _deployments(children())
    assert {f"demo-{a.k8s_name}" for a in ACTORS} <= set(deployments)
    assert all(
        not k.startswith(labels.ACTOR_LABEL_PREFIX)
        for d in deployments.values()
        for k in d["metadata"]["labels"]
    )


def test_ungrouped_actors_are_byte_for_byte_unchanged_by_a_group() -> None:
    before = _deployments(children({"llm": LLM}))
    after = _deployments(children(_grouped(ROUTERS, llm=LLM)))
    for name in ("demo-intent-analyzer", "demo-context-retriever", "demo-response-generator"):
        assert after[name] == before[name]


def test_group_pods_are_found_by_each_member_and_selected_by_the_group() -> None:
    deployment = _deployments(children(_grouped(ROUTERS)))["demo-routers"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pod_labels[labels.COMPONENT] == "routers"
    assert pod_labels["actors.actormesh.io/decision-router"] == "true"
    assert pod_labels["actors.actormesh.io/escalation-router"] == "true"
    assert deployment["metadata"]["labels"]["actors.actormesh.io/decision-router"] == "true"
    # The member labels stay out of the (immutable) selector: adding a member does not orphan pods.
    assert deployment["spec"]["selector"]["matchLabels"] == labels.selector_labels("demo", "routers")


def test_group_process_gets_the_union_of_its_members_secrets_and_settings() -> None:
    # intentAnalyzer uses the LLM, contextRetriever Redis and the commerce APIs, decisionRouter neither.
    group = {"name": "front", "actors": ["intentAnalyzer", "contextRetriever", "decisionRouter"]}
    objs = children(_grouped(group, llm=LLM))
    env = env_of(_deployments(objs)["demo-front"])
    assert env["LLM_API_KEY"] == {"secretKeyRef": {"name": "llm", "key": "api-key"}}
    assert "REDIS_PASSWORD" in env
    assert env["NATS_USER"] == "group_front"
    assert env["NATS_PASSWORD"] == {"secretKeyRef": {"name": "demo-nats-users", "key": "group_front"}}
    routers_env = env_of(_deployments(children(_grouped(ROUTERS, llm=LLM)))["demo-routers"])
    assert "LLM_API_KEY" not in routers_env
    assert "REDIS_PASSWORD" not in routers_env


def test_group_settings_are_the_process_settings() -> None:
    group = {
        **ROUTERS,
        "replicas": 3,
        "concurrency": 16,
        "logLevel": "DEBUG",
        "resources": {"requests": {"cpu": "20m"}},
        "env": [{"name": "EXTRA", "value": "1"}],
    }
    deployment = _deployments(children(_grouped(group)))["demo-routers"]
    env = env_of(deployment)
    assert deployment["spec"]["replicas"] == 3
    assert env["ACTOR_CONCURRENCY"] == "16"
    assert env["LOG_LEVEL"] == "DEBUG"
    assert env["EXTRA"] == "1"
    assert container(deployment)["resources"] == {"requests": {"cpu": "20m"}}


def test_group_with_an_llm_member_gets_the_llm_default_resources() -> None:
    plain = container(_deployments(children(_grouped(ROUTERS)))["demo-routers"])["resources"]
    with_llm = {"name": "writers", "actors": ["responseGenerator", "responseAggregator"]}
    llm = container(_deployments(children(_grouped(with_llm)))["demo-writers"])["resources"]
    assert plain["limits"]["memory"] == "256Mi"
    assert llm["limits"]["memory"] == "512Mi"


def test_group_config_hash_follows_what_any_member_reads() -> None:
    group = {"name": "front", "actors": ["intentAnalyzer", "decisionRouter"]}

    def hashes(model: str) -> tuple[str, str]:
        objs = _deployments(children(_grouped(group, ROUTERS_ALT, llm={**LLM, "model": model})))
        return tuple(  # type: ignore[return-value]
            objs[n]["spec"]["template"]["metadata"]["annotations"]["actormesh.io/config-hash"]
            for n in ("demo-front", "demo-routers2")
        )

    front_a, routers_a = hashes("a")
    front_b, routers_b = hashes("b")
    assert front_a != front_b  # intentAnalyzer reads the LLM model
    assert routers_a == routers_b  # no member of routers2 does


ROUTERS_ALT = {"name": "routers2", "actors": ["escalationRouter", "responseAggregator"]}


def _policy_components(objs: list[dict[str, Any]], name: str) -> list[str]:
    """Components a policy is about: the pods it admits (`from` of its first ingress rule, for the
    servers' ingress policies) or, for an egress policy, the pods it selects."""
    spec = index(objs)[("NetworkPolicy", name)]["spec"]
    selector = spec["ingress"][0]["from"][0]["podSelector"] if spec.get("ingress") else spec["podSelector"]
    values: list[str] = selector["matchExpressions"][0]["values"]
    return values


@pytest.mark.parametrize(
    ("group", "policy", "selected"),
    [
        pytest.param(
            {"name": "g", "actors": ["intentAnalyzer", "decisionRouter"]}, "demo-allow-llm", True, id="llm"
        ),
        pytest.param(ROUTERS | {"name": "g"}, "demo-allow-llm", False, id="no-llm-member"),
        pytest.param(
            {"name": "g", "actors": ["contextRetriever", "decisionRouter"]}, "demo-allow-mocks", True,
            id="commerce",
        ),
        pytest.param(ROUTERS | {"name": "g"}, "demo-allow-mocks", False, id="no-commerce-member"),
        pytest.param(
            {"name": "g", "actors": ["contextRetriever", "decisionRouter"]}, "demo-allow-redis", True,
            id="redis",
        ),
        pytest.param(ROUTERS | {"name": "g"}, "demo-allow-redis", False, id="no-redis-member"),
        pytest.param(ROUTERS | {"name": "g"}, "demo-allow-nats", True, id="nats"),
    ],
)  # fmt: skip
def test_group_flows_are_the_union_of_its_members_flows(
    group: dict[str, Any], policy: str, selected: bool
) -> None:
    components = _policy_components(children(_grouped(group, llm=LLM)), policy)
    assert ("g" in components) is selected
    members = {a.k8s_name for a in ACTORS if a.spec_key in group["actors"]}
    assert not members & set(components)  # the members' own pods are gone, so are their selectors


def test_group_pods_are_scraped() -> None:
    objs = children(_grouped(ROUTERS, monitoring={"scrapeNamespace": "monitoring"}))
    scrape = next(o for o in objs if o["kind"] == "NetworkPolicy" and "scrape" in o["metadata"]["name"])
    assert "routers" in scrape["spec"]["podSelector"]["matchExpressions"][0]["values"]


def test_group_gets_one_hpa_and_pdb_named_like_its_deployment() -> None:
    group = {**ROUTERS, "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 4}}
    objs = index(children(_grouped(group)))
    hpa = objs[("HorizontalPodAutoscaler", "demo-routers")]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "demo-routers"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
    assert "replicas" not in objs[("Deployment", "demo-routers")]["spec"]
    pdb = objs[("PodDisruptionBudget", "demo-routers")]
    assert pdb["spec"]["selector"]["matchLabels"] == labels.selector_labels("demo", "routers")
    assert ("HorizontalPodAutoscaler", "demo-decision-router") not in objs


def test_single_replica_group_has_no_pdb() -> None:
    assert ("PodDisruptionBudget", "demo-routers") not in index(children(_grouped(ROUTERS)))


def test_queue_lag_group_scales_on_every_members_consumer() -> None:
    group = {**ROUTERS, "autoscaling": {"enabled": True, "mode": "queueLag"}}
    scaled = index(children(_grouped(group), keda=True))[("ScaledObject", "demo-routers")]
    consumers = [t["metadata"]["consumer"] for t in scaled["spec"]["triggers"]]
    subjects = Subjects("demo")
    assert consumers == [subjects.consumer("decision_router"), subjects.consumer("escalation_router")]


def test_group_nats_user_may_do_what_its_members_may() -> None:
    mesh = make_mesh(_grouped(ROUTERS))
    users = {p.user: p for p in user_permissions(mesh)}
    assert set(users) == {*NATS_USERS, "group_routers"}
    subjects = Subjects("demo")
    group = users["group_routers"]
    for member in ("decision_router", "escalation_router"):
        assert set(nats_permissions(subjects, member).publish) <= set(group.publish)
    # Not what a non-member may: another actor's consumer stays out of reach.
    assert subjects.consumer("intent_analyzer") not in " ".join(group.publish)
    assert group.subscribe == ("_INBOX.group_routers.>",)
    config = index(children(_grouped(ROUTERS)))[("ConfigMap", "demo-nats-config")]["data"]["nats.conf"]
    assert '{user: "group_routers", password: $NATS_PASSWORD_GROUP_ROUTERS' in config
    password = {"secretKeyRef": {"name": "demo-nats-users", "key": "group_routers"}}
    assert {"name": "NATS_PASSWORD_GROUP_ROUTERS", "valueFrom": password} in password_env(mesh)
    (nats_users,) = [s for s in generated_secrets(mesh) if s.name == "demo-nats-users"]
    assert "group_routers" in nats_users.keys


def test_group_nats_user_may_do_exactly_what_its_running_members_may() -> None:
    """The union and nothing more: a disabled member's consumer, dead letters and lookups are not the
    group's (its process does not run it), and a group with no running member has no user at all (an
    empty allow-list would mean "allow everything" to nats-server)."""
    subjects = Subjects("demo")

    def group_user(spec: dict[str, Any]) -> tuple[str, ...] | None:
        found = [p for p in user_permissions(make_mesh(spec)) if p.user == "group_routers"]
        return found[0].publish if found else None

    members = {"decision_router", "escalation_router"}
    union = {s for m in members for s in nats_permissions(subjects, m).publish}
    assert set(group_user(_grouped(ROUTERS)) or ()) == union
    one_off = _grouped(ROUTERS, actors={"escalationRouter": {"enabled": False}})
    assert set(group_user(one_off) or ()) == set(nats_permissions(subjects, "decision_router").publish)
    assert subjects.escalations_lookup not in (group_user(one_off) or ())
    all_off = _grouped(
        ROUTERS, actors={"decisionRouter": {"enabled": False}, "escalationRouter": {"enabled": False}}
    )
    assert group_user(all_off) is None


def test_with_direct_hops_every_actor_user_and_group_user_gets_the_direct_hop_subjects() -> None:
    """A group receives on each running member's direct subject; lone actors get theirs (catalog)."""
    subjects = Subjects("demo")
    spec = _grouped(ROUTERS, actors={"directHops": True, "escalationRouter": {"enabled": False}})
    users = {p.user: p for p in user_permissions(make_mesh(spec))}
    group = users["group_routers"]
    assert group.subscribe == ("_INBOX.group_routers.>", subjects.direct("decision_router"))
    assert set(group.publish) == set(nats_permissions(subjects, "decision_router", direct_hops=True).publish)
    for user in NATS_USERS:
        assert users[user] == nats_permissions(subjects, user, direct_hops=True), user
    config = index(children(spec))[("ConfigMap", "demo-nats-config")]["data"]["nats.conf"]
    assert (
        f'subscribe: {{allow: ["_INBOX.group_routers.>", "{subjects.direct("decision_router")}"]}}' in config
    )
    without = {p.user: p for p in user_permissions(make_mesh(_grouped(ROUTERS)))}
    assert without["group_routers"].subscribe == ("_INBOX.group_routers.>",)
    assert subjects.any_direct not in without["group_routers"].publish


def test_disabled_member_is_left_out_and_an_emptied_group_has_no_deployment() -> None:
    spec = _grouped(ROUTERS, actors={"decisionRouter": {"enabled": False}})
    deployments = _deployments(children(spec))
    assert container(deployments["demo-routers"])["args"] == ["actor", "escalation_router"]
    spec = _grouped(
        ROUTERS, actors={"decisionRouter": {"enabled": False}, "escalationRouter": {"enabled": False}}
    )
    assert not {"demo-routers", "demo-decision-router", "demo-escalation-router"} & set(
        _deployments(children(spec))
    )


def test_group_env_secrets_are_checked_under_the_group_path() -> None:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "k"}}}]
    refs = referenced_secrets(make_mesh(_grouped({**ROUTERS, "env": env})))
    assert [r.field_path for r in refs if r.name == "tok"] == [
        "spec.actors.groups[0].env[0].valueFrom.secretKeyRef"
    ]


def _live(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] in {"Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"}]


def test_removing_a_group_prunes_its_children_and_brings_back_the_members() -> None:
    group = {**ROUTERS, "replicas": 2, "autoscaling": {"enabled": True}}
    grouped = children(_grouped(group))
    ungrouped = children()
    pruned = {
        (o["kind"], o["metadata"]["name"]) for o in select_prunable(_live(grouped), ungrouped, "0000-uid")
    }
    assert pruned == {
        ("Deployment", "demo-routers"),
        ("HorizontalPodAutoscaler", "demo-routers"),
        ("PodDisruptionBudget", "demo-routers"),
    }
    assert {"demo-decision-router", "demo-escalation-router"} <= set(_deployments(ungrouped))
    # And the other way: grouping prunes the members' own Deployments.
    pruned_back = {o["metadata"]["name"] for o in select_prunable(_live(ungrouped), grouped, "0000-uid")}
    assert pruned_back == {"demo-decision-router", "demo-escalation-router"}


def test_reserved_group_names_cover_every_component_label() -> None:
    components = {v for k, v in vars(labels).items() if k.isupper() and isinstance(v, str) and k not in {
        "NAME", "INSTANCE", "COMPONENT", "PART_OF", "MANAGED_BY", "VERSION", "APP", "OPERATOR",
        "ACTOR_LABEL_PREFIX",
    }}  # fmt: skip
    assert components == set(RESERVED_COMPONENTS)
    assert {a.k8s_name for a in ACTORS} <= set(RESERVED_GROUP_NAMES)
