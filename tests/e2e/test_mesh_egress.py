"""Each actor reaches only what its policy allows, tried from inside each actor's own pod.

Expectations come from `actormesh_runtime.catalog` (what each actor uses), never from a table here, so
they cannot drift from the operator's NetworkPolicies (builders/network.py reads the same facts).
Every "refused" target is one that does accept connections from somewhere (checked from a pod
without policies), so a refusal is the policy's doing, not an empty port.

Two meshes: the minimal sample (no LLM: no actor may reach the LLM address), and the same sample with
`spec.llm` pointing at the test LLM on the node address and an `egressExcept` that leaves only that
address open (the `llm_demo` fixture). There `allow-llm` must let the LLM actors (catalog `uses_llm`)
reach the endpoint, and nobody else; and the LLM actors must still be refused the same port on another
address (a listener in another namespace) and another port on the same address (the API server).
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from actormesh_operator.builders.network import external_servers, tcp
from actormesh_runtime.catalog import ACTORS, ActorInfo, Ports
from tests.e2e import mesh as m
from tests.e2e.cluster import E2ECluster, pod_ready
from tests.harness.cluster import layout
from tests.support.llm_server import LLMTestServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

RUNTIME_IMAGE = "actormesh/actormesh:0.1.0"
COMPONENT = "app.kubernetes.io/component"
OUTSIDE_PORT = 8081
# One connect per target, all at once: one `kubectl exec` per actor pod.
PROBE = (
    "import json, socket, sys\n"
    "from concurrent.futures import ThreadPoolExecutor\n"
    "def ok(t):\n"
    "    try:\n"
    "        socket.create_connection((t[0], int(t[1])), timeout=3).close()\n"
    "        return True\n"
    "    except OSError:\n"
    "        return False\n"
    "targets = json.loads(sys.argv[1])\n"
    "with ThreadPoolExecutor(len(targets)) as ex:\n"
    "    print(json.dumps(list(ex.map(ok, targets))))\n"
)


def _listener(name: str, *ports: int) -> dict[str, Any]:
    """A pod outside the mesh that accepts connections on `ports`: the 'address outside the mesh'."""
    pod = m.probe_pod(name, RUNTIME_IMAGE)
    pod["spec"]["containers"][0]["command"] = [
        "python", "-c",
        "import socket, sys, threading\n"
        "def serve(port):\n"
        "    s = socket.create_server(('0.0.0.0', port))\n"
        "    while True:\n"
        "        c, _ = s.accept(); c.close()\n"
        "for p in sys.argv[2:]:\n"
        "    threading.Thread(target=serve, args=(int(p),), daemon=True).start()\n"
        "serve(int(sys.argv[1]))\n",
        *(str(p) for p in ports),
    ]  # fmt: skip
    return pod


def _expected(actor: ActorInfo, target: str, *, mesh_has_llm: bool) -> bool:
    """What the catalog says `actor` may reach (the LLM endpoint only when the mesh has `spec.llm`)."""
    if target == "nats":
        return True
    if target == "redis":
        return actor.uses_redis
    if target.startswith("mocks"):
        return actor.calls_commerce_apis
    if target == "llm":
        return mesh_has_llm and actor.uses_llm
    # history, another actor, the gateway, the API server, outside the mesh, the LLM's port elsewhere
    return False


def _reached(
    cluster: E2ECluster, namespace: str, pod: str, targets: dict[str, tuple[str, int]]
) -> dict[str, bool]:
    argv = json.dumps([list(t) for t in targets.values()])
    result = cluster.exec(namespace, pod, "python", "-c", PROBE, argv, timeout=60)
    assert result.returncode == 0, result.stderr
    return dict(zip(targets, json.loads(result.stdout), strict=True))


@pytest.mark.parametrize("mesh_fixture", ["demo", "llm_demo"])
def test_each_actor_reaches_only_what_its_policy_allows(
    cluster: E2ECluster, namespace: str, mesh_fixture: str, request: pytest.FixtureRequest
) -> None:
    demo_ns, mesh = request.getfixturevalue(mesh_fixture)
    mesh_has_llm = bool(mesh["spec"].get("llm"))
    assert mesh_has_llm == (mesh_fixture == "llm_demo")
    # The test LLM listens on the sealed node's address; elsewhere (kind) the demo runs without it.
    llm: LLMTestServer | None = request.getfixturevalue("llm") if cluster.sealed_node else None
    listen = (OUTSIDE_PORT, llm.port) if llm else (OUTSIDE_PORT,)
    cluster.wait_pods_ready(demo_ns, timeout=180)
    cluster.apply([_listener("outside", *listen), m.probe_pod("control", RUNTIME_IMAGE)], namespace)
    cluster.wait_pods_ready(namespace, timeout=120)
    outside_ip = cluster.get("pod", "outside", "-n", namespace)["status"]["podIP"]
    pods = {
        p["metadata"]["labels"][COMPONENT]: p
        for p in cluster.pods(demo_ns, "app.kubernetes.io/instance=demo")
        if pod_ready(p) and not p["metadata"].get("deletionTimestamp")
    }
    svc = f"{demo_ns}.svc.cluster.local"
    targets: dict[str, tuple[str, int]] = {
        "nats": (f"demo-nats.{svc}", Ports.NATS_CLIENT),
        "redis": (f"demo-redis.{svc}", Ports.REDIS),
        "mocks-customers": (f"demo-mocks.{svc}", Ports.CUSTOMER_API),
        "mocks-orders": (f"demo-mocks.{svc}", Ports.ORDERS_API),
        "mocks-tracking": (f"demo-mocks.{svc}", Ports.TRACKING_API),
        "history": (pods["history"]["status"]["podIP"], Ports.HISTORY_HTTP),
        "gateway": (pods["gateway"]["status"]["podIP"], Ports.GATEWAY),
        "apiserver": ("kubernetes.default.svc.cluster.local", 443),
        "outside": (outside_ip, OUTSIDE_PORT),
    }
    if llm is not None:
        # The LLM endpoint (the node address, the apiBase port), the same port on another address,
        # and another port (the API server's own) on the LLM's address.
        targets["llm"] = (layout.NODE_IP, llm.port)
        targets["llm-port-elsewhere"] = (outside_ip, llm.port)
        targets["apiserver-on-llm-address"] = (layout.NODE_IP, layout.API_PORT)
    # Every target accepts connections from a pod without policies (another namespace), except the
    # mesh's fenced backends, which accept their own clients (checked per actor below).
    open_to_all = [t for t in targets if t in ("gateway", "apiserver", "outside") or "llm" in t]
    control = _reached(cluster, namespace, "control", {k: targets[k] for k in open_to_all})
    assert control == dict.fromkeys(open_to_all, True)

    mismatches: dict[str, dict[str, bool]] = {}
    allowed_somewhere: set[str] = set()
    for actor in ACTORS:
        pod = pods[actor.k8s_name]
        own = {**targets, "another-actor": _another_actor_ip(pods, actor)}
        reached = _reached(cluster, demo_ns, pod["metadata"]["name"], own)
        allowed_somewhere |= {t for t, ok in reached.items() if ok}
        wrong = {t: ok for t, ok in reached.items() if ok != _expected(actor, t, mesh_has_llm=mesh_has_llm)}
        if wrong:
            mismatches[actor.name.value] = wrong
    assert mismatches == {}
    # The fenced backends do listen: some actor reached each of them.
    assert {"nats", "redis", "mocks-customers", "mocks-orders", "mocks-tracking"} <= allowed_somewhere
    assert ("llm" in allowed_somewhere) == mesh_has_llm


def _another_actor_ip(pods: dict[str, dict[str, Any]], actor: ActorInfo) -> tuple[str, int]:
    other = next(a for a in ACTORS if a.name != actor.name)
    return (pods[other.k8s_name]["status"]["podIP"], Ports.ACTOR_HTTP)


def test_the_history_port_and_actor_ports_do_listen(
    cluster: E2ECluster, demo: tuple[str, dict[str, Any]]
) -> None:
    """The refused targets above are live: each answers its own health check inside its pod."""
    demo_ns, _ = demo
    # The same ports the egress test above is refused on: history's own, and an actor's.
    for component, port in (("history", Ports.HISTORY_HTTP), (ACTORS[0].k8s_name, Ports.ACTOR_HTTP)):
        [pod] = [p for p in cluster.pods(demo_ns, f"{COMPONENT}={component}") if pod_ready(p)]
        name = pod["metadata"]["name"]
        assert m.can_connect(cluster, demo_ns, name, "127.0.0.1", port), component


@pytest.fixture
def metadata_stand_in() -> Iterator[tuple[str, int]]:
    """A TCP listener on a link-local address of the node (`layout.METADATA_STAND_IN_IP` on `lo`), where
    a cloud's metadata endpoint would be; the address goes when the test ends (or at `make
    cluster-down`, should this process die first)."""
    ip = layout.METADATA_STAND_IN_IP
    subprocess.run(["ip", "addr", "add", f"{ip}/32", "dev", "lo"], check=True, capture_output=True)
    server = socket.create_server((ip, OUTSIDE_PORT))
    server.settimeout(0.5)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.close()

    thread = threading.Thread(target=serve, name="metadata-stand-in", daemon=True)
    thread.start()
    try:
        yield ip, OUTSIDE_PORT
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()
        subprocess.run(["ip", "addr", "del", f"{ip}/32", "dev", "lo"], check=False, capture_output=True)


def test_the_egress_to_an_external_server_reaches_pods_and_addresses_on_its_port_only(
    cluster: E2ECluster, namespace: str, metadata_stand_in: tuple[str, int]
) -> None:
    """The rule an external NATS, Redis or commerce API gets (`external_servers()`: every pod, every
    address but the cloud metadata ranges) as kube-router enforces it: its port on a pod and on an
    address outside the cluster (the node's), and no other port on either; and not its port on a
    link-local address (where a cloud's metadata endpoint, 169.254.169.254, answers)."""
    client = {"e2e": "external-client"}
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "external-server"},
        "spec": {
            "podSelector": {"matchLabels": client},
            "policyTypes": ["Egress"],
            "egress": [{"to": external_servers(), "ports": tcp(OUTSIDE_PORT, layout.API_PORT)}],
        },
    }
    other_port = OUTSIDE_PORT + 1
    pods = [
        _listener("outside", OUTSIDE_PORT, other_port),
        m.probe_pod("client", RUNTIME_IMAGE, client),
        m.probe_pod("control", RUNTIME_IMAGE),
    ]
    cluster.apply([policy, *pods], namespace)
    cluster.wait_pods_ready(namespace, timeout=120)
    outside_ip = cluster.get("pod", "outside", "-n", namespace)["status"]["podIP"]
    targets = {
        "pod-on-its-port": (outside_ip, OUTSIDE_PORT),
        "pod-on-another-port": (outside_ip, other_port),
        "node-on-its-port": (layout.NODE_IP, layout.API_PORT),
        "node-on-another-port": (layout.NODE_IP, layout.METRICS_SERVER_PORT),
        "link-local-on-its-port": metadata_stand_in,
    }
    # Every target listens: a pod without policies reaches them all, so a refusal is the policy's.
    assert _reached(cluster, namespace, "control", targets) == dict.fromkeys(targets, True)
    reached = _reached(cluster, namespace, "client", targets)
    assert reached == {
        "pod-on-its-port": True,
        "pod-on-another-port": False,
        "node-on-its-port": True,
        "node-on-another-port": False,
        "link-local-on-its-port": False,
    }
