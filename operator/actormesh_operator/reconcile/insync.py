"""What a mesh's last complete pass found in sync, so a pass over unchanged inputs skips the builders.

A pass builds every desired child from the mesh (pure builders, ~5 ms for the sample mesh), hashes
each (~2 ms) and compares it with the cache. When nothing changed — the resync's pass every few
minutes over every mesh, a child event that turned out to be nothing — that work gives the same
answer again: on an idle operator with 100 meshes it was nearly all of its CPU.

So `runner.py` keeps, per mesh, a digest of everything the builders read (the mesh's metadata and
spec, which optional kinds the cluster serves) and of the referenced Secrets' data, with the key and
hash of every child the pass applied or found in sync. A later pass whose inputs have the same digests,
whose live children are exactly those keys, and each of which `apply_children` has verified at its
current apply version (`children.ChildCache.apply_version`: status updates do not move it) against
that same hash (`verified`), has nothing to apply or prune: it only
recomputes the status. Anything else — a new generation, a label, a Secret's value, a child edited,
deleted or added — runs the full pass. Only digests and hashes are kept (a few KB per mesh), not the
desired children themselves (about 1 MB of dicts per mesh).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from actormesh_operator.reconcile.diff import ApplyVersions, ChildKey, version_of

_VOLATILE_METADATA = ("resourceVersion", "managedFields")
"""Changed by every status write (ours included), and read by no builder."""


def inputs_digest(
    body: Mapping[str, Any], *, keda: bool, monitoring: frozenset[str], gateway_api: bool
) -> bytes:
    """A digest of what `build_children` reads: the mesh (but its status and volatile metadata) and the
    optional kinds the cluster serves."""
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k not in _VOLATILE_METADATA}
    inputs = [meta, body.get("spec"), keda, sorted(monitoring), gateway_api]
    return hashlib.sha256(orjson.dumps(inputs, option=orjson.OPT_SORT_KEYS)).digest()


def secrets_digest(secrets: Mapping[str, Mapping[str, str]]) -> bytes:
    """A digest of the referenced Secrets' data (never kept or logged itself)."""
    return hashlib.sha256(orjson.dumps(secrets, option=orjson.OPT_SORT_KEYS)).digest()


@dataclass(frozen=True)
class InSync:
    """One mesh's last complete, unpaused pass: its input digests and every child's desired hash."""

    inputs: bytes
    secret_names: frozenset[str]
    secrets: bytes
    hashes: Mapping[ChildKey, str]

    def still_holds(
        self,
        inputs: bytes,
        secrets: bytes,
        live: Mapping[ChildKey, Mapping[str, Any]],
        verified: Mapping[ChildKey, tuple[str, str]],
        versions: ApplyVersions | None = None,
    ) -> bool:
        """True when a pass with these inputs over these live children would apply and prune nothing."""
        if inputs != self.inputs or secrets != self.secrets or live.keys() != self.hashes.keys():
            return False
        for key, digest in self.hashes.items():
            version = version_of(key, live[key], versions)
            if not version or verified.get(key) != (version, digest):
                return False
        return True
