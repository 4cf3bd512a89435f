"""Refusing a mesh whose name is already taken on the same external NATS or Redis server.

The runtime names everything it keeps on NATS and Redis after the mesh's name alone, not its namespace:
the JetStream stream `ACTORMESH-<mesh>`, the subjects `actormesh.<mesh>.*`, the durable consumers in
them, the Redis keys `actormesh:<mesh>:*` (`actormesh_runtime.catalog.Subjects`). A managed NATS or Redis
belongs to one mesh, so that is enough there; but two meshes called `shop` in two namespaces pointed at
one external server would share the stream and the keys, and each would consume the other's
conversations. Putting the namespace into those names would orphan every in-flight message of every
existing mesh on upgrade, so the operator refuses the clash instead: the older mesh keeps the name on
that server, the newer one is stalled until it is renamed or pointed elsewhere.

Pure: `runner.py` calls `shared_name_clash` with the mesh being reconciled and every mesh the operator
has cached (`meshes.py`), before anything is written for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from actormesh_operator.api.observed import dig
from actormesh_operator.api.status import ConditionType, Reason
from actormesh_runtime.catalog import Subjects

NATS_FIELD = "spec.nats.external.url"
REDIS_FIELD = "spec.redis.external.url"

_DEFAULT_PORTS = {"nats": 4222, "tls": 4222, "ws": 80, "wss": 443, "redis": 6379, "rediss": 6379}
"""The port a client uses when the URL has none (nats-py: 4222 for nats/tls, the HTTP ports for
websockets; redis-py: 6379 for both schemes)."""

Server = tuple[str, int]
"""(lowercased host, port)"""


@dataclass(frozen=True)
class SharedNameClash:
    """An older mesh of the same name already uses the server this mesh's `field` points at."""

    field: str
    """`spec.nats.external.url` or `spec.redis.external.url`."""
    other: str
    """The older mesh, `namespace/name`."""
    shared: str
    """What the two would share, e.g. `JetStream stream ACTORMESH-shop (subjects actormesh.shop.>)`."""
    servers: tuple[str, ...]
    """The `host:port`s both URLs name."""

    def message(self) -> str:
        what = "NATS" if self.field == NATS_FIELD else "Redis"
        return (
            f"{self.field}: mesh {self.other}, created earlier, has the same name and uses the same {what}"
            f" server ({', '.join(self.servers)}); the two would share the {self.shared} and each read"
            f" the other's conversations. Rename this mesh or use another {what} server; nothing is"
            f" applied until then"
        )


def shared_name_clash(body: Mapping[str, Any], others: Iterable[Mapping[str, Any]]) -> SharedNameClash | None:
    """The clash that must stop `body`'s mesh, if any: a mesh with the same name in another namespace,
    created before it (same second: the namespace that sorts first), whose external NATS (then Redis)
    URL names a server that this mesh's URL names too. Meshes on managed servers never clash."""
    name, namespace = _meta(body, "name"), _meta(body, "namespace")
    seniority = _seniority(body)
    rivals = sorted(  # oldest first: the message names the mesh that holds the name longest
        (
            o
            for o in others
            if _meta(o, "name") == name and _meta(o, "namespace") != namespace and _seniority(o) < seniority
        ),
        key=_seniority,
    )
    subjects = Subjects(name)
    checks = (
        (NATS_FIELD, nats_url, f"JetStream stream {subjects.stream} (subjects {subjects.prefix}.>)"),
        (REDIS_FIELD, redis_url, f"Redis key prefix actormesh:{name}:"),
    )
    for field, url_of, shared in checks:
        mine = servers(url_of(body))
        if not mine:
            continue
        for other in rivals:
            common = mine & servers(url_of(other))
            if common:
                where = tuple(_show(s) for s in sorted(common))
                return SharedNameClash(field, f"{_meta(other, 'namespace')}/{name}", shared, where)
    return None


def stalled_by_clash(body: Mapping[str, Any]) -> bool:
    """The mesh's status says a clash stalled it (so deleting or moving its namesake may free it)."""
    conditions = (body.get("status") or {}).get("conditions") or []
    return any(
        c.get("type") == ConditionType.STALLED and c.get("reason") == Reason.SHARED_NAME_CLASH
        for c in conditions
        if isinstance(c, Mapping)
    )


def servers(url: str | None) -> frozenset[Server]:
    """The servers a (comma-separated) NATS or Redis URL names, as comparable (host, port) pairs.

    The scheme (nats/tls, redis/rediss), user, password and path are ignored: the port is filled in
    per scheme, then only host and port say which server it is. That errs towards refusing: two users
    in separate NATS accounts, or two Redis database numbers, would in fact be apart, but a URL does not
    prove it (the accounts are the server's configuration, and a database number is one edit away).
    Host names are compared as written (no DNS): `nats.infra` and `nats.infra.svc.cluster.local` are
    not recognised as one server. A part that does not parse is skipped."""
    found: set[Server] = set()
    for part in (url or "").split(","):
        try:
            split = urlsplit(part.strip())
            host, port = split.hostname, split.port
        except ValueError:  # e.g. a port out of range, in a body that bypassed the CRD's pattern
            continue
        if host:
            found.add((host.rstrip(".").lower(), port or _DEFAULT_PORTS.get(split.scheme.lower(), 0)))
    return frozenset(found)


def nats_url(body: Mapping[str, Any]) -> str | None:
    return _str(dig(body, "spec", "nats", "external", "url"))


def redis_url(body: Mapping[str, Any]) -> str | None:
    if dig(body, "spec", "redis", "enabled") is False:  # disabled: the actors cache in process
        return None
    return _str(dig(body, "spec", "redis", "external", "url"))


def _seniority(body: Mapping[str, Any]) -> tuple[datetime, str]:
    """Older first; a tie (creation times have one-second resolution) goes to the namespace sorting
    first, so both meshes' passes agree on which one stops. A body without a creation time (never one
    from the API server) counts as the newest."""
    created = _meta(body, "creationTimestamp")
    try:
        when = datetime.fromisoformat(created) if created else datetime.max
    except ValueError:
        when = datetime.max
    offset = when.utcoffset()  # the API server writes UTC (`Z`); anything else is brought to it
    return (when - offset if offset else when).replace(tzinfo=None), _meta(body, "namespace")


def _show(server: Server) -> str:
    host, port = server
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _meta(body: Mapping[str, Any], key: str) -> str:
    return str((body.get("metadata") or {}).get(key) or "")


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
