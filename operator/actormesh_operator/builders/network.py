"""NetworkPolicies: deny everything to and from the mesh's pods, then allow only the flows it needs.

Called by `build_children` when `spec.networkPolicy.enabled` (the default). A connection needs both
the source's egress and the destination's ingress to allow it, so the policies are cut by destination,
not by flow: the servers' ingress is exact, and the clients' egress inside the mesh is one shared rule
set that those ingress rules guard. Egress leaving the mesh stays per source. `kubectl get netpol`
reads as the list of what may be reached, and from where:

- base: every mesh pod. No ingress; egress to kube-system port 53 (DNS) only;
- allow-mesh-egress: the clients (actors, gateway, history) → the mesh's own NATS (4222, 8222), Redis
  (6379) and the mock APIs some actor calls. Never selects a server: kube-router runs every rule of
  every policy selecting a pod in that pod's one chain, whatever the rule's direction, so a policy
  with egress to pods it selects itself would open their ingress;
- allow-nats: → NATS 4222 from actors, gateway, history; 6222 from the NATS peers (and their egress to
  each other); the monitor port 8222 (unauthenticated) only from the history pod (it reads the server
  metrics) and from `spec.networkPolicy.kedaNamespace`, only when a ScaledObject reads it;
- allow-mocks: → the mock APIs from context_retriever and execution_coordinator;
- allow-redis: → Redis 6379 from the actors that use Redis, and the gateway;
- allow-gateway: anyone → gateway 8000 (the Service/Ingress decide who can reach it);
- leaving the mesh, per source: allow-nats-clients / allow-redis-clients (actors, gateway, history /
  Redis users → an external server, on its URL's port), allow-commerce-apis (the API callers → the
  real APIs' ports), each to any pod of the cluster or any address but the cloud metadata ranges
  (`METADATA_EXCEPT`), allow-llm (LLM actors → any address outside
  `spec.networkPolicy.egressExcept` (private, link-local, loopback by default), TCP 443 or the port
  of `spec.llm.apiBase`, only when an LLM is configured), allow-tracing (actors, gateway, history →
  the trace collector's port, in `spec.monitoring.tracing.collectorNamespace`, else outside
  `egressExcept`, when an endpoint is set).
An actor group (`spec.actors.groups`) is selected by every flow any of its members needs. History
gets no ingress at all: it only connects out to NATS. Kubelet probes are not subject to
NetworkPolicy; Prometheus in another namespace is let in by `allow-metrics-scrape`
(`spec.monitoring.scrapeNamespace`, builders/monitoring.py). Policies an older operator made per flow
(deny-all, allow-dns, allow-nats-monitor, ...) are pruned as no longer desired, after the new ones
are applied (policies add up, so no flow is cut in between).
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import ip_network
from typing import Any
from urllib.parse import urlsplit

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import labels, names
from actormesh_operator.builders.autoscaling import uses_scaled_object
from actormesh_operator.builders.meta import Manifest, manifest, object_meta
from actormesh_operator.builders.mocks import MOCK_PORTS
from actormesh_runtime.catalog import Ports

_DEFAULT_PORTS = {"nats": 4222, "tls": 4222, "ws": 80, "wss": 443, "http": 80, "https": 443}
_DEFAULT_PORTS |= {"redis": Ports.REDIS, "rediss": Ports.REDIS}
Rule = dict[str, Any]
HTTPS_PORT = 443
METADATA_EXCEPT = {4: ["169.254.0.0/16", "100.100.100.200/32"], 6: ["fe80::/10", "fd00:ec2::254/128"]}
"""Never reachable through the egress to an external NATS, Redis or commerce API: link-local (the
metadata endpoint of AWS, GCP and Azure at 169.254.169.254), Alibaba Cloud's metadata address and
AWS's IPv6 one. Those servers may sit on private addresses or inside the cluster, so unlike the LLM's
egress (`spec.networkPolicy.egressExcept`) private ranges stay open; a commerce URL on port 80 must not
also open the instance's credentials to the two actors that call it."""


def url_ports(urls: Iterable[str]) -> list[int]:
    """Distinct TCP ports of URLs (explicit, or the scheme's default), sorted."""
    ports = set()
    for url in urls:
        parts = urlsplit(url.strip())
        ports.add(parts.port or _DEFAULT_PORTS.get(parts.scheme, 443))
    return sorted(ports)


def pods(mesh: ActorMesh, components: Iterable[str]) -> dict[str, Any]:
    """podSelector for some of this mesh's components."""
    return {
        "matchLabels": labels.mesh_selector(mesh.name),
        "matchExpressions": [{"key": labels.COMPONENT, "operator": "In", "values": sorted(set(components))}],
    }


def tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def _policy(
    mesh: ActorMesh, flow: str, selector: dict[str, Any], *, ingress: list[Rule] | None = None,
    egress: list[Rule] | None = None,
) -> Manifest:  # fmt: skip
    spec: dict[str, Any] = {"podSelector": selector, "policyTypes": []}
    if ingress is not None:
        spec["policyTypes"].append("Ingress")
        spec["ingress"] = ingress
    if egress is not None:
        spec["policyTypes"].append("Egress")
        spec["egress"] = egress
    meta = object_meta(mesh, names.network_policy(mesh.name, flow), labels.NETWORK)
    return manifest("networking.k8s.io/v1", "NetworkPolicy", meta, spec=spec)


def _actors(mesh: ActorMesh, attribute: str) -> list[str]:
    """Component labels of the actor pods needing a flow: a group's when any member needs it."""
    return [w.component for w in mesh.spec.actors.workloads() if w.any_member(attribute)]


def actor_components(mesh: ActorMesh) -> list[str]:
    """Component labels of every actor pod: enabled lone actors and groups."""
    return [w.component for w in mesh.spec.actors.workloads()]


def nats_clients(mesh: ActorMesh) -> list[str]:
    return [*actor_components(mesh), labels.GATEWAY, labels.HISTORY]


def redis_clients(mesh: ActorMesh) -> list[str]:
    return [*_actors(mesh, "uses_redis"), labels.GATEWAY]


def _base(mesh: ActorMesh) -> list[Manifest]:
    """`base` (every mesh pod: no ingress, DNS egress) and `allow-mesh-egress` (the clients → the
    mesh's own servers, on every port a server serves to one of them; the servers are never selected,
    see the module docstring)."""
    everything = {"matchLabels": labels.mesh_selector(mesh.name)}
    dns = {
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
        "ports": [{"protocol": "UDP", "port": 53}, *tcp(53)],
    }
    out = [_policy(mesh, "base", everything, ingress=[], egress=[dns])]
    servers = _in_mesh_egress(mesh)
    if servers:
        out.append(_policy(mesh, "allow-mesh-egress", pods(mesh, nats_clients(mesh)), egress=servers))
    return out


def _in_mesh_egress(mesh: ActorMesh) -> list[Rule]:
    """To this mesh's NATS, Redis and mock pods, on the ports they serve to some client."""
    rules: list[Rule] = []
    if mesh.spec.nats.managed:
        ports = tcp(Ports.NATS_CLIENT, Ports.NATS_MONITOR)
        rules.append({"to": [{"podSelector": pods(mesh, [labels.NATS])}], "ports": ports})
    if mesh.spec.redis.enabled and mesh.spec.redis.external is None:
        rules.append({"to": [{"podSelector": pods(mesh, [labels.REDIS])}], "ports": tcp(Ports.REDIS)})
    mocked = _mocked_ports(mesh)
    if mocked:
        rules.append({"to": [{"podSelector": pods(mesh, [labels.MOCKS])}], "ports": tcp(*mocked)})
    return rules


def _nats(mesh: ActorMesh, *, keda_available: bool) -> list[Manifest]:
    clients = nats_clients(mesh)
    if not mesh.spec.nats.managed:
        external = mesh.spec.nats.external
        ports = url_ports(external.url.split(",")) if external is not None else [Ports.NATS_CLIENT]
        to_server = [{"to": external_servers(), "ports": tcp(*ports)}]
        return [_policy(mesh, "allow-nats-clients", pods(mesh, clients), egress=to_server)]
    nats = pods(mesh, [labels.NATS])
    ingress: list[Rule] = [
        {"from": [{"podSelector": pods(mesh, clients)}], "ports": tcp(Ports.NATS_CLIENT)},
        # The history service reads /varz and /jsz into the NATS server metrics (docs/metrics.md).
        {"from": [{"podSelector": pods(mesh, [labels.HISTORY])}], "ports": tcp(Ports.NATS_MONITOR)},
    ]
    egress: list[Rule] = []
    if mesh.spec.nats.replicas > 1:
        ingress.append({"from": [{"podSelector": nats}], "ports": tcp(Ports.NATS_CLUSTER)})
        egress.append({"to": [{"podSelector": nats}], "ports": tcp(Ports.NATS_CLUSTER)})
    if any(
        uses_scaled_object(mesh, a, keda_available=keda_available) for a in mesh.spec.actors.enabled_actors()
    ):
        # KEDA's operator polls the monitor endpoint (unauthenticated, so no other namespace may).
        keda = {"kubernetes.io/metadata.name": mesh.spec.network_policy.keda_namespace}
        ingress.append(
            {"from": [{"namespaceSelector": {"matchLabels": keda}}], "ports": tcp(Ports.NATS_MONITOR)}
        )
    return [_policy(mesh, "allow-nats", nats, ingress=ingress, egress=egress or None)]


def _mocked_ports(mesh: ActorMesh) -> list[int]:
    """Ports of the mock APIs some actor calls (those without a real URL), when the mocks run."""
    if not mesh.spec.mock_services.enabled or not _actors(mesh, "calls_commerce_apis"):
        return []
    return [MOCK_PORTS[api] for api, url in _commerce_urls(mesh).items() if url is None]


def _commerce_urls(mesh: ActorMesh) -> dict[str, str | None]:
    apis = mesh.spec.commerce_apis
    return {"customers": apis.customer_url, "orders": apis.orders_url, "tracking": apis.tracking_url}


def _commerce(mesh: ActorMesh) -> list[Manifest]:
    """The mocks' ingress from the API callers; the callers' egress to real APIs outside the mesh."""
    callers = _actors(mesh, "calls_commerce_apis")
    out: list[Manifest] = []
    if _mocked_ports(mesh):
        ingress = [{"from": [{"podSelector": pods(mesh, callers)}], "ports": tcp(*MOCK_PORTS.values())}]
        out.append(_policy(mesh, "allow-mocks", pods(mesh, [labels.MOCKS]), ingress=ingress))
    external = [url for url in _commerce_urls(mesh).values() if url is not None]
    if callers and external:
        egress = [{"to": external_servers(), "ports": tcp(*url_ports(external))}]
        out.append(_policy(mesh, "allow-commerce-apis", pods(mesh, callers), egress=egress))
    return out


def _redis(mesh: ActorMesh) -> list[Manifest]:
    redis = mesh.spec.redis
    if not redis.enabled:
        return []
    clients = redis_clients(mesh)
    if redis.external is not None:
        egress: list[Rule] = [{"to": external_servers(), "ports": tcp(*url_ports([redis.external.url]))}]
        return [_policy(mesh, "allow-redis-clients", pods(mesh, clients), egress=egress)]
    ingress = [{"from": [{"podSelector": pods(mesh, clients)}], "ports": tcp(Ports.REDIS)}]
    return [_policy(mesh, "allow-redis", pods(mesh, [labels.REDIS]), ingress=ingress)]


def _gateway_and_llm(mesh: ActorMesh) -> list[Manifest]:
    out = [
        _policy(mesh, "allow-gateway", pods(mesh, [labels.GATEWAY]), ingress=[{"ports": tcp(Ports.GATEWAY)}])
    ]
    llm_actors = _actors(mesh, "uses_llm")
    llm = mesh.spec.llm
    if llm is not None and llm_actors:
        ports = url_ports([llm.api_base]) if llm.api_base else [HTTPS_PORT]
        egress = [{"to": public_internet(mesh), "ports": tcp(*ports)}]
        out.append(_policy(mesh, "allow-llm", pods(mesh, llm_actors), egress=egress))
    return out


def _tracing(mesh: ActorMesh) -> list[Manifest]:
    """Runtime pods → the trace collector's port: in `collectorNamespace`, else outside the cluster."""
    tracing = mesh.spec.monitoring.tracing
    if tracing.endpoint is None:
        return []
    if tracing.collector_namespace is not None:
        namespace = {"kubernetes.io/metadata.name": tracing.collector_namespace}
        to: list[Rule] = [{"namespaceSelector": {"matchLabels": namespace}}]
    else:
        to = public_internet(mesh)
    egress = [{"to": to, "ports": tcp(*url_ports([tracing.endpoint]))}]
    return [_policy(mesh, "allow-tracing", pods(mesh, nats_clients(mesh)), egress=egress)]


def public_internet(mesh: ActorMesh) -> list[Rule]:
    """Every address except `spec.networkPolicy.egressExcept` (private, link-local, loopback by default):
    an LLM provider has no fixed IPs, but the cloud metadata endpoint, the API server and the cluster's
    other pods must stay out of reach of a process that talks to it."""
    blocks: list[Rule] = []
    for family, everything in ((4, "0.0.0.0/0"), (6, "::/0")):
        excluded = [c for c in mesh.spec.network_policy.egress_except if ip_network(c).version == family]
        block: dict[str, Any] = {"cidr": everything}
        if excluded:
            block["except"] = excluded
        blocks.append({"ipBlock": block})
    return blocks


def external_servers() -> list[Rule]:
    """Any pod of the cluster, or any address outside `METADATA_EXCEPT`. The pods are named as well
    because some network plugins (Cilium) never match a pod's address against an ipBlock: an external
    Redis in another namespace must stay reachable there too."""
    blocks: list[Rule] = [{"namespaceSelector": {}}]
    for family, everything in ((4, "0.0.0.0/0"), (6, "::/0")):
        blocks.append({"ipBlock": {"cidr": everything, "except": METADATA_EXCEPT[family]}})
    return blocks


def build_network_policies(mesh: ActorMesh, *, keda_available: bool = False) -> list[Manifest]:
    """Every NetworkPolicy of the mesh, or none when `spec.networkPolicy.enabled` is false."""
    if not mesh.spec.network_policy.enabled:
        return []
    return [
        *_base(mesh),
        *_nats(mesh, keda_available=keda_available),
        *_commerce(mesh),
        *_redis(mesh),
        *_gateway_and_llm(mesh),
        *_tracing(mesh),
    ]
