"""network.py: the rendered NetworkPolicies, evaluated as Kubernetes would, allow exactly the mesh's flows.

A small evaluator (NetworkPolicy semantics for podSelector/namespaceSelector/ipBlock peers and TCP/UDP
ports) asks "may pod A open a connection to pod B on port P?" against the rendered policies, so the
test checks behaviour, not the policies' wording. A second one answers as kube-router (the e2e
cluster's enforcer) does, which reads a policy's rules regardless of direction; both must agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network
from typing import Any

import pytest

from actormesh_operator.builders.mocks import MOCK_PORTS
from actormesh_runtime.catalog import ACTORS, Ports
from tests.unit.builder_helpers import children

NS = "shop"


@dataclass(frozen=True)
class Pod:
    namespace: str | None  # None: an address outside the cluster
    labels: dict[str, str] = field(default_factory=dict)
    ip: str = "198.18.0.10"  # pod addresses of the sealed test cluster


PUBLIC_IP = "203.0.113.10"


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In", "evaluator supports In only"
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def _peer_matches(peer: dict[str, Any], pod: Pod, policy_ns: str) -> bool:
    if "ipBlock" in peer:
        # Pod IPs are matched like any other address (the conservative reading of the spec).
        block, ip = peer["ipBlock"], ip_address(pod.ip)
        if ip.version != ip_network(block["cidr"]).version or ip not in ip_network(block["cidr"]):
            return False
        return not any(
            ip.version == ip_network(c).version and ip in ip_network(c) for c in block.get("except", [])
        )
    if pod.namespace is None:
        return False
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": pod.namespace}):
            return False
    elif pod.namespace != policy_ns:
        return False
    return "podSelector" not in peer or _selects(peer["podSelector"], pod.labels)


def _port_matches(rule: dict[str, Any], port: int, protocol: str) -> bool:
    ports = rule.get("ports")
    return not ports or any(p["port"] == port and p.get("protocol", "TCP") == protocol for p in ports)


def _side_allows(
    policies: list[dict[str, Any]], pod: Pod, peer: Pod, port: int, proto: str, kind: str
) -> bool:
    """Is `pod`'s `kind` (Ingress/Egress) traffic with `peer` allowed? Unselected pods allow everything."""
    if pod.namespace is None:
        return True
    relevant = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and kind in p["spec"]["policyTypes"]
        and _selects(p["spec"]["podSelector"], pod.labels)
    ]
    if not relevant:
        return True
    key, peers_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
    for policy in relevant:
        for rule in policy["spec"].get(key, []):
            peers = rule.get(peers_key)
            peer_ok = not peers or any(_peer_matches(x, peer, policy["metadata"]["namespace"]) for x in peers)
            if peer_ok and _port_matches(rule, port, proto):
                return True
    return False


def allowed(policies: list[dict[str, Any]], src: Pod, dst: Pod, port: int, proto: str = "TCP") -> bool:
    return _side_allows(policies, src, dst, port, proto, "Egress") and _side_allows(
        policies, dst, src, port, proto, "Ingress"
    )


def _selected(policy: dict[str, Any], pod: Pod) -> bool:
    return pod.namespace == policy["metadata"]["namespace"] and _selects(
        policy["spec"]["podSelector"], pod.labels
    )


def _rule_matches(policy: dict[str, Any], src: Pod, dst: Pod, port: int, proto: str) -> bool:
    """Does any rule of `policy` match the packet, read as (source set, destination set, port)?"""
    ns = policy["metadata"]["namespace"]
    sides = (("ingress", "from", dst, src), ("egress", "to", src, dst))
    return any(
        _selected(policy, own)
        and (not rule.get(peers_key) or any(_peer_matches(x, peer, ns) for x in rule[peers_key]))
        and _port_matches(rule, port, proto)
        for key, peers_key, own, peer in sides
        for rule in policy["spec"].get(key, [])
    )


def allowed_as_kube_router(
    policies: list[dict[str, Any]], src: Pod, dst: Pod, port: int, proto: str = "TCP"
) -> bool:
    """How kube-router (the e2e cluster's enforcer) decides: one firewall chain per pod, entered for
    packets from it when an Egress policy selects it and for packets to it when an Ingress policy
    does, running EVERY rule of every policy selecting the pod, whatever its direction. So an egress
    rule of a policy that also selects the destination admits the packet at the destination too: a
    policy whose egress reaches pods it selects itself opens their ingress (the e2e matrix caught it)."""

    def chain_accepts(pod: Pod) -> bool:
        return any(_rule_matches(p, src, dst, port, proto) for p in policies if _selected(p, pod))

    def entered(pod: Pod, kind: str) -> bool:
        return any(kind in p["spec"]["policyTypes"] and _selected(p, pod) for p in policies)

    return (not entered(src, "Egress") or chain_accepts(src)) and (
        not entered(dst, "Ingress") or chain_accepts(dst)
    )


def _mesh(spec: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Pod]]:
    objs = children(spec)
    pods = {
        o["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]: Pod(
            NS, o["spec"]["template"]["metadata"]["labels"]
        )
        for o in objs
        if o["kind"] in {"Deployment", "StatefulSet"}
    }
    pods["elsewhere"] = Pod("other", {"app": "browser-proxy"})
    pods["same-ns-stranger"] = Pod(NS, {"app": "unrelated"})
    pods["dns"] = Pod("kube-system", {"k8s-app": "kube-dns"})
    pods["internet"] = Pod(None, ip=PUBLIC_IP)
    pods["internet-v6"] = Pod(None, ip="2001:db8::10")
    pods["metadata"] = Pod(None, ip="169.254.169.254")
    pods["private-vm"] = Pod(None, ip="10.1.2.3")
    pods["api-server"] = Pod(None, ip="198.19.0.1")
    return [o for o in objs if o["kind"] == "NetworkPolicy"], pods


LLM = {"llm": {"model": "gpt-4o-mini"}, "nats": {"replicas": 3}}
LOCAL_LLM = {"llm": {"model": "ollama/llama3", "apiBase": "http://llm.example.net:11434"}}

FLOWS = [
    # (spec, source, destination, port, allowed)
    ({}, "sentiment-analyzer", "nats", 4222, True),
    ({}, "gateway", "nats", 4222, True),
    ({}, "history", "nats", 4222, True),
    ({}, "mocks", "nats", 4222, False),
    ({}, "redis", "nats", 4222, False),
    ({}, "same-ns-stranger", "nats", 4222, False),
    ({}, "elsewhere", "nats", 4222, False),
    ({}, "sentiment-analyzer", "nats", 8222, False),
    ({}, "gateway", "nats", 8222, False),
    ({}, "history", "nats", 8222, True),  # the NATS server metrics (docs/metrics.md)
    ({}, "history", "gateway", 8222, False),
    (LLM, "nats", "nats", 6222, True),
    (LLM, "gateway", "nats", 6222, False),
    ({}, "context-retriever", "mocks", 8001, True),
    ({}, "execution-coordinator", "mocks", 8002, True),
    ({}, "decision-router", "mocks", 8001, False),
    ({}, "gateway", "mocks", 8003, False),
    ({}, "context-retriever", "redis", 6379, True),
    ({}, "execution-coordinator", "redis", 6379, True),
    ({}, "response-aggregator", "redis", 6379, False),
    ({}, "gateway", "redis", 6379, True),
    ({}, "sentiment-analyzer", "redis", 6379, False),
    ({}, "elsewhere", "gateway", 8000, True),
    ({}, "internet", "gateway", 8000, True),
    ({}, "elsewhere", "gateway", 8080, False),
    ({}, "gateway", "history", 8080, False),
    ({}, "nats", "history", 8080, False),
    ({}, "elsewhere", "history", 8080, False),
    ({}, "history", "internet", 443, False),
    ({}, "intent-analyzer", "internet", 443, False),
    (LLM, "intent-analyzer", "internet", 443, True),
    (LLM, "intent-analyzer", "internet-v6", 443, True),
    (LLM, "response-generator", "internet", 80, False),
    (LLM, "response-generator", "internet", 11434, False),
    (LOCAL_LLM, "response-generator", "internet", 11434, True),
    (LOCAL_LLM, "response-generator", "internet", 443, False),
    (LLM, "intent-analyzer", "metadata", 443, False),
    (LLM, "intent-analyzer", "metadata", 80, False),
    (LLM, "intent-analyzer", "private-vm", 443, False),
    (LLM, "intent-analyzer", "api-server", 443, False),
    (LLM, "intent-analyzer", "elsewhere", 443, False),
    (LLM, "intent-analyzer", "same-ns-stranger", 443, False),
    (LLM, "sentiment-analyzer", "internet", 443, False),
    (LLM, "gateway", "internet", 443, False),
    ({}, "gateway", "elsewhere", 80, False),
]


@pytest.mark.parametrize(
    ("spec", "src", "dst", "port", "expected"),
    FLOWS,
    ids=[f"{s}->{d}:{p}{'+llm' if spec else ''}={'allow' if ok else 'deny'}" for spec, s, d, p, ok in FLOWS],
)
def test_flow(spec: dict[str, Any], src: str, dst: str, port: int, expected: bool) -> None:
    policies, pods = _mesh(spec)
    assert allowed(policies, pods[src], pods[dst], port) is expected
    assert allowed_as_kube_router(policies, pods[src], pods[dst], port) is expected


@pytest.mark.parametrize("component", ["sentiment-analyzer", "gateway", "history", "nats", "redis", "mocks"])
def test_every_mesh_pod_may_resolve_dns_only_in_kube_system(component: str) -> None:
    policies, pods = _mesh({})
    assert allowed(policies, pods[component], pods["dns"], 53, "UDP")
    assert allowed(policies, pods[component], pods["dns"], 53, "TCP")
    assert not allowed(policies, pods[component], pods["elsewhere"], 53, "UDP")


def test_external_services_are_reached_on_their_ports_only() -> None:
    spec = {
        "nats": {"external": {"url": "nats://nats.infra:4333"}},
        "redis": {"external": {"url": "rediss://cache.infra"}},
        "mockServices": {"enabled": False},
        "commerceApis": {
            "customerUrl": "https://crm.example.com",
            "ordersUrl": "http://orders:8080",
            "trackingUrl": "https://t.example.com",
        },
    }
    policies, pods = _mesh(spec)
    out = pods["internet"]
    assert allowed(policies, pods["gateway"], out, 4333)
    assert not allowed(policies, pods["gateway"], out, 4222)
    assert allowed(policies, pods["context-retriever"], out, 6379)
    assert allowed(policies, pods["context-retriever"], out, 8080)
    assert allowed(policies, pods["execution-coordinator"], out, 443)
    assert not allowed(policies, pods["decision-router"], out, 443)


EXTERNAL_ON_PORT_80 = {
    "nats": {"external": {"url": "nats://nats.infra:80"}},
    "redis": {"external": {"url": "redis://cache.infra:80"}},
    "mockServices": {"enabled": False},
    "commerceApis": {"ordersUrl": "http://orders.infra"},
}


@pytest.mark.parametrize("client", ["gateway", "context-retriever", "execution-coordinator"])
def test_no_external_service_rule_reaches_the_cloud_metadata_endpoint(client: str) -> None:
    """A commerce, Redis or NATS URL on port 80 must not open 169.254.169.254:80 (the instance's
    credentials) to the pods that call it; everything else on that port stays open, private
    addresses and other namespaces' pods included (such servers often live there)."""
    policies, pods = _mesh(EXTERNAL_ON_PORT_80)
    metadata_v6 = Pod(None, ip="fd00:ec2::254")
    alibaba = Pod(None, ip="100.100.100.200")
    in_cluster = Pod("infra", {"app": "orders"})
    for evaluate in (allowed, allowed_as_kube_router):
        for target in (pods["metadata"], metadata_v6, alibaba, Pod(None, ip="169.254.0.1")):
            assert not evaluate(policies, pods[client], target, 80), (evaluate.__name__, target)
        for target in (pods["internet"], pods["internet-v6"], pods["private-vm"], in_cluster):
            assert evaluate(policies, pods[client], target, 80), (evaluate.__name__, target)


def test_external_service_rules_name_every_pod_for_plugins_that_never_match_pods_by_address() -> None:
    """Cilium never matches a pod's address against an ipBlock: the rules must also name the pods, or
    an external Redis in another namespace would be cut off there."""
    policies, _ = _mesh(EXTERNAL_ON_PORT_80)
    names = {"demo-allow-nats-clients", "demo-allow-redis-clients", "demo-allow-commerce-apis"}
    rules = [r for p in policies if p["metadata"]["name"] in names for r in p["spec"]["egress"]]
    assert len(rules) == 3
    assert all({"namespaceSelector": {}} in rule["to"] for rule in rules)


def test_keda_may_read_the_nats_monitor_only_when_a_scaled_object_exists() -> None:
    spec = {"actors": {"responseGenerator": {"autoscaling": {"enabled": True, "mode": "queueLag"}}}}
    keda = Pod("keda", {"app": "keda-operator"})
    with_keda = [o for o in children(spec, keda=True) if o["kind"] == "NetworkPolicy"]
    without = [o for o in children(spec, keda=False) if o["kind"] == "NetworkPolicy"]
    _, pods = _mesh({})
    assert allowed(with_keda, keda, pods["nats"], 8222)
    assert not allowed(with_keda, keda, pods["nats"], 4222)
    assert not allowed(without, keda, pods["nats"], 8222)
    assert not allowed(with_keda, Pod("monitoring", {"app": "keda-operator"}), pods["nats"], 8222)
    assert not allowed(with_keda, pods["elsewhere"], pods["nats"], 8222)
    moved = [
        o
        for o in children({**spec, "networkPolicy": {"kedaNamespace": "autoscaling"}}, keda=True)
        if o["kind"] == "NetworkPolicy"
    ]
    assert allowed(moved, Pod("autoscaling", {"app": "keda-operator"}), pods["nats"], 8222)
    assert not allowed(moved, keda, pods["nats"], 8222)


def test_the_llm_egress_except_list_is_configurable() -> None:
    spec = {**LLM, "networkPolicy": {"egressExcept": ["169.254.0.0/16"]}}
    policies, pods = _mesh(spec)
    assert not allowed(policies, pods["intent-analyzer"], pods["metadata"], 443)
    assert allowed(policies, pods["intent-analyzer"], pods["private-vm"], 443)
    assert allowed(policies, pods["intent-analyzer"], pods["internet-v6"], 443)


def test_disabled_network_policy_renders_none() -> None:
    assert not [o for o in children({"networkPolicy": {"enabled": False}}) if o["kind"] == "NetworkPolicy"]


def test_the_base_policy_denies_all_ingress_to_every_mesh_pod() -> None:
    policies, pods = _mesh({})
    [base] = [p for p in policies if p["metadata"]["name"] == "demo-base"]
    assert base["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert base["spec"]["ingress"] == []
    mesh_pods = [p for name, p in pods.items() if p.namespace == NS and name != "same-ns-stranger"]
    assert all(_selects(base["spec"]["podSelector"], p.labels) for p in mesh_pods)
    assert not _selects(base["spec"]["podSelector"], pods["same-ns-stranger"].labels)


def test_one_policy_per_destination_not_per_flow() -> None:
    """base, the clients' egress to the mesh's servers, then the ingress of NATS, mocks, Redis and the
    gateway."""
    policies, _ = _mesh({})
    assert [p["metadata"]["name"] for p in policies] == [
        "demo-base",
        "demo-allow-mesh-egress",
        "demo-allow-nats",
        "demo-allow-mocks",
        "demo-allow-redis",
        "demo-allow-gateway",
    ]


IN_MESH_PORTS = [
    Ports.NATS_CLIENT, Ports.NATS_CLUSTER, Ports.NATS_MONITOR, Ports.REDIS, Ports.GATEWAY, Ports.ACTOR_HTTP,
    *MOCK_PORTS.values(),
]  # fmt: skip
_ACTOR_BY_COMPONENT = {a.k8s_name: a for a in ACTORS}


def _in_mesh_expected(
    src: str, dst: str, port: int, *, nats_peers: bool, gateway_itself: tuple[str, ...] = ()
) -> bool:
    """Who may reach whom inside the mesh, from the catalog's facts: the one table the rendered policies
    must match, whatever policy each rule lives in."""
    actor = _ACTOR_BY_COMPONENT.get(src)
    if dst == "gateway":  # open to clients; no mesh pod calls it
        # (kube-router lets a gateway pod reach the gateway too: `allow-gateway`'s rule "anyone → the
        # gateway pods" runs in the gateway's own chain. Harmless: the port is open to everyone.)
        return port == Ports.GATEWAY and src in {"elsewhere", "same-ns-stranger", *gateway_itself}
    if dst == "nats" and port == Ports.NATS_CLIENT:
        return actor is not None or src in {"gateway", "history"}
    if dst == "nats" and port == Ports.NATS_MONITOR:
        return src == "history"  # unauthenticated: nobody else in the mesh
    if dst == "nats" and port == Ports.NATS_CLUSTER:
        return src == "nats" and nats_peers
    if dst == "redis" and port == Ports.REDIS:
        return src == "gateway" or (actor is not None and actor.uses_redis)
    if dst == "mocks" and port in MOCK_PORTS.values():
        return actor is not None and actor.calls_commerce_apis
    return False


@pytest.mark.parametrize("spec", [{}, LLM], ids=["minimal", "llm-3-nats"])
def test_every_in_mesh_connection_is_allowed_exactly_when_the_catalog_needs_it(spec: dict[str, Any]) -> None:
    """Egress inside the mesh is broad (one policy for every client), so the destinations' ingress must
    be exact: every source x destination x port, outsiders included, as the spec reads the policies
    and as kube-router enforces them."""
    policies, pods = _mesh(spec)
    sources = [n for n, p in pods.items() if p.namespace is not None and n != "dns"]
    destinations = [n for n, p in pods.items() if p.namespace == NS and n != "same-ns-stranger"]
    for decide, gateway_itself in ((allowed, ()), (allowed_as_kube_router, ("gateway",))):
        wrong = [
            (src, dst, port)
            for src in sources
            for dst in destinations
            for port in IN_MESH_PORTS
            if decide(policies, pods[src], pods[dst], port)
            != _in_mesh_expected(src, dst, port, nats_peers=bool(spec), gateway_itself=gateway_itself)
        ]
        assert wrong == [], decide.__name__
