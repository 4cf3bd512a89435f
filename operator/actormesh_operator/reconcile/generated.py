"""Create the Secrets the operator generates (builders/generated.py) if absent; never overwrite them.

Called by the runner before any child is applied, so the pods that read a generated key never start
without it. A Secret that exists keeps every value it has: only keys it lacks are added (a merge patch
naming just those keys). The values come from `random_value` (the `secrets` module), are sent once to
the API server and are never logged. A Secret someone created by hand under the same name is used as it
is (that is how a user pins a key without `authSecretRef`).
"""

from __future__ import annotations

import base64
import logging
import math
import secrets
import string
from collections.abc import Iterable
from typing import Any

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders.generated import GeneratedSecret, generated_secret_manifest
from actormesh_operator.reconcile.errors import action
from actormesh_operator.reconcile.kube import MERGE_PATCH, KubeApiError, KubeClient
from actormesh_operator.reconcile.observe import SECRETS, SecretCache

logger = logging.getLogger(__name__)


ALPHABET = string.ascii_letters + string.digits
LETTERS = string.ascii_letters


def random_value(nbytes: int) -> str:
    """At least `nbytes` random bytes' worth of entropy as letters and digits, starting with a letter
    (and at least `nbytes` characters long). nats-server parses a `$VAR` value like any config value:
    one starting with a digit or `-` becomes a number or a date and breaks the config, so the NATS
    passwords may only be plain words."""
    length = max(nbytes, math.ceil(nbytes * 8 / math.log2(len(ALPHABET)))) + 1
    return secrets.choice(LETTERS) + "".join(secrets.choice(ALPHABET) for _ in range(length - 1))


def _encoded(keys: Iterable[str], nbytes: int) -> dict[str, str]:
    return {key: base64.b64encode(random_value(nbytes).encode()).decode() for key in keys}


async def _read(
    kube: KubeClient, mesh: ActorMesh, name: str, cache: SecretCache | None
) -> dict[str, Any] | None:
    with action(f"read secret {name}"):
        live = await kube.get(SECRETS, name, mesh.namespace)
    if cache is not None:
        cache.remember(mesh.namespace, name, live)
    return live


async def ensure_generated_secret(
    kube: KubeClient, mesh: ActorMesh, secret: GeneratedSecret, cache: SecretCache | None = None
) -> str | None:
    """Create `secret` or add its missing keys; returns what was done (for the Applied Event) or None.

    A Secret the `cache` knows complete costs nothing; an unknown one is simply created (only a 409
    makes us read it), so a new mesh costs one request per generated Secret."""
    known, data = cache.lookup(mesh.namespace, secret.name) if cache is not None else (False, None)
    if known and data is not None and all(key in data for key in secret.keys):
        return None
    live: dict[str, Any] | None = None
    if cache is None or (known and data is not None):  # no cache, or it lacks keys: read it fresh
        live = await _read(kube, mesh, secret.name, cache)
    if live is None:
        body = {**generated_secret_manifest(mesh, secret), "data": _encoded(secret.keys, secret.random_bytes)}
        try:
            created = await kube.request("POST", SECRETS.path(mesh.namespace), body=body)
        except KubeApiError as exc:
            if exc.status != 409:
                with action(f"create secret {secret.name}"):
                    raise
            # It exists (someone made it, or our cache did not know it yet): use it as it is.
            live = await _read(kube, mesh, secret.name, cache)
            if live is None:  # deleted again in between: the retry creates it
                with action(f"create secret {secret.name}"):
                    raise
        else:
            if cache is not None:
                cache.remember(mesh.namespace, secret.name, created)
            logger.info("generated secret %s/%s (%s)", mesh.namespace, secret.name, secret.purpose)
            return f"secret {secret.name} (generated)"
    missing = [key for key in secret.keys if key not in (live.get("data") or {})]
    if not missing:
        return None
    patch = {
        "metadata": {"resourceVersion": live["metadata"]["resourceVersion"]},
        "data": _encoded(missing, secret.random_bytes),
    }
    with action(f"add keys to secret {secret.name}"):
        patched = await kube.request(
            "PATCH", SECRETS.path(mesh.namespace, secret.name), body=patch, content_type=MERGE_PATCH
        )
    if cache is not None:
        cache.remember(mesh.namespace, secret.name, patched)
    logger.info("added keys %s to secret %s/%s", ", ".join(missing), mesh.namespace, secret.name)
    return f"secret {secret.name} (added {', '.join(missing)})"


async def ensure_generated_secrets(
    kube: KubeClient, mesh: ActorMesh, wanted: Iterable[GeneratedSecret], cache: SecretCache | None = None
) -> list[str]:
    done = [await ensure_generated_secret(kube, mesh, secret, cache) for secret in wanted]
    return [d for d in done if d is not None]
