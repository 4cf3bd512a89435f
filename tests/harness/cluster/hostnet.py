"""Host network of the sealed node: set up by `up`, undone by `down`, each change recorded first.

Sealing (BRIEF.md, docs/e2e.md): the node's address on `lo`, pods and Services all live in
198.18.0.0/15; a blackhole route keeps the rest of that range off the wire; mangle DROP rules on the
uplink are a second guard; the Service range is routed to an empty bridge (with only the blackhole,
host -> ClusterIP fails with EINVAL before kube-proxy's DNAT runs); nothing is masqueraded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

from tests.harness.cluster import layout
from tests.harness.cluster.shellrun import ok, run
from tests.harness.cluster.state import ClusterState

# Chains the node's components create: kube-proxy and kubelet (KUBE-), kube-router (KUBE-ROUTER-,
# KUBE-POD-FW-, KUBE-NWPLCY-, KUBE-SRC-/DST- ipsets), the CNI portmap plugin (CNI-), ours (AM-).
CHAIN_PREFIXES = ("KUBE-", "CNI-", "AM-")
IPSET_PREFIXES = ("KUBE-", "kube-router", "inet6:KUBE-", "inet6:kube-router")
TABLES = ("filter", "nat", "mangle", "raw")


def uplink() -> str:
    out = run(["ip", "-4", "route", "show", "default"], check=False)
    match = re.search(r"\bdev (\S+)", out)
    return match.group(1) if match else ""


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls(names: Iterable[str]) -> dict[str, str]:
    values = {}
    for name in names:
        path = _sysctl_path(name)
        if path.exists():
            values[name] = path.read_text().strip()
    return values


def write_sysctl(name: str, value: str) -> None:
    path = _sysctl_path(name)
    if path.exists():
        path.write_text(value + "\n")


def setup_steps(state: ClusterState) -> list[tuple[str, Callable[[], object]]]:
    """(name, action) pairs in order; up.py records each name before running its action."""
    steps: list[tuple[str, Callable[[], object]]] = [
        ("lo-address", lambda: run(["ip", "addr", "add", f"{layout.NODE_IP}/32", "dev", "lo"])),
        ("blackhole-route", lambda: run(["ip", "route", "add", "blackhole", layout.SEALED_RANGE])),
        ("service-bridge", _add_service_bridge),
        ("sysctls", _set_sysctls),
    ]
    if state.uplink:
        steps.append(("seal-chain", lambda: _add_seal_chain(state.uplink)))
    return steps


def _add_service_bridge() -> None:
    run(["ip", "link", "add", layout.SERVICE_BRIDGE, "type", "bridge"])
    run(["ip", "link", "set", layout.SERVICE_BRIDGE, "up"])
    run(["ip", "route", "add", layout.SERVICE_CIDR, "dev", layout.SERVICE_BRIDGE, "src", layout.NODE_IP])


def _set_sysctls() -> None:
    write_sysctl("net.ipv4.ip_forward", "1")
    write_sysctl("net.bridge.bridge-nf-call-iptables", "1")


def _add_seal_chain(dev: str) -> None:
    chain = layout.SEAL_CHAIN
    run(["iptables", "-t", "mangle", "-N", chain])
    for direction in ("-s", "-d"):
        run(
            ["iptables", "-t", "mangle", "-A", chain, "-o", dev, direction, layout.SEALED_RANGE, "-j", "DROP"]
        )
    run(["iptables", "-t", "mangle", "-I", "POSTROUTING", "-j", chain])


# --- teardown -------------------------------------------------------------------------------------


def iptables_cleanup_commands(table: str, rules: str) -> list[list[str]]:
    """From `iptables -t TABLE -S` output: delete rules that jump to or mention our chains, bridges or
    ranges, then flush and delete our chains. Pure; unit-tested."""
    ours_chain = re.compile(r"^(" + "|".join(re.escape(p) for p in CHAIN_PREFIXES) + r")")
    markers = (layout.CNI_BRIDGE, layout.SERVICE_BRIDGE, "198.18.", "198.19.")
    deletes: list[list[str]] = []
    chains: list[str] = []
    for line in rules.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "-N" and ours_chain.match(parts[1]):
            chains.append(parts[1])
        elif len(parts) >= 2 and parts[0] == "-A" and not ours_chain.match(parts[1]):
            target = parts[parts.index("-j") + 1] if "-j" in parts[:-1] else ""
            if ours_chain.match(target) or any(m in line for m in markers):
                deletes.append(["-t", table, "-D", *parts[1:]])
    commands = deletes + [["-t", table, "-F", c] for c in chains] + [["-t", table, "-X", c] for c in chains]
    return [_unquote(c) for c in commands]


def _unquote(argv: list[str]) -> list[str]:
    # `iptables -S` quotes comments ("...") and the words inside stay split; rejoin them.
    out: list[str] = []
    buf: list[str] | None = None
    for word in argv:
        if buf is not None:
            buf.append(word)
            if word.endswith('"'):
                out.append(" ".join(buf)[1:-1])
                buf = None
        elif word.startswith('"') and not (word.endswith('"') and len(word) > 1):
            buf = [word]
        else:
            out.append(word[1:-1] if len(word) > 1 and word.startswith('"') and word.endswith('"') else word)
    return out


def remove_iptables() -> None:
    for binary in ("iptables", "ip6tables"):
        for table in TABLES:
            rules = run([binary, "-t", table, "-S"], check=False)
            for argv in iptables_cleanup_commands(table, rules):
                run([binary, *argv], check=False)


def remove_ipsets() -> None:
    out = run(["ipset", "list", "-n"], check=False)
    for name in out.split():
        if name.startswith(IPSET_PREFIXES):
            run(["ipset", "destroy", name], check=False)


def leftover_chains() -> list[str]:
    found = []
    for binary in ("iptables", "ip6tables"):
        for table in TABLES:
            for line in run([binary, "-t", table, "-S"], check=False).splitlines():
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "-N" and parts[1].startswith(CHAIN_PREFIXES):
                    found.append(f"{binary} {table} {parts[1]}")
    return found


def remove_links() -> None:
    out = run(["ip", "-o", "link", "show"], check=False)
    for line in out.splitlines():
        # Pod veths left attached to our bridge (their netns normally takes them along).
        match = re.match(r"^\d+: ([^:@]+)[^\n]*master " + layout.CNI_BRIDGE + r"\b", line)
        if match:
            run(["ip", "link", "del", match.group(1)], check=False)
    for bridge in (layout.CNI_BRIDGE, layout.SERVICE_BRIDGE):
        if ok(["ip", "link", "show", bridge]):
            run(["ip", "link", "del", bridge], check=False)


def remove_routes_and_address() -> None:
    run(["ip", "route", "del", "blackhole", layout.SEALED_RANGE], check=False)
    run(["ip", "route", "del", layout.SERVICE_CIDR], check=False)
    run(["ip", "addr", "del", f"{layout.NODE_IP}/32", "dev", "lo"], check=False)
    # An e2e test's (tests/e2e/test_mesh_egress.py), should its process have died before removing it.
    run(["ip", "addr", "del", f"{layout.METADATA_STAND_IN_IP}/32", "dev", "lo"], check=False)


def restore_sysctls(values: dict[str, str]) -> None:
    for name, value in values.items():
        try:
            if _sysctl_path(name).read_text().strip() != value:
                write_sysctl(name, value)
        except OSError:
            pass


def leftovers() -> list[str]:
    """What of the node's network is still on the host (empty after a clean `down`)."""
    found = leftover_chains()
    links = run(["ip", "-o", "link", "show"], check=False)
    found += [f"link {b}" for b in (layout.CNI_BRIDGE, layout.SERVICE_BRIDGE) if f": {b}:" in links]
    routes = run(["ip", "-4", "route", "show", "table", "all"], check=False)
    found += [f"route {line}" for line in routes.splitlines() if "198.18." in line or "198.19." in line]
    addrs = run(["ip", "-4", "-o", "addr", "show"], check=False)
    ours = (layout.NODE_IP, layout.METADATA_STAND_IN_IP)
    found += [f"address {line}" for line in addrs.splitlines() if any(f" {ip}/" in line for ip in ours)]
    sets = run(["ipset", "list", "-n"], check=False).split()
    found += [f"ipset {name}" for name in sets if name.startswith(IPSET_PREFIXES)]
    return found
