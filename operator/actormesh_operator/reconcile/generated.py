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

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders.generated import GeneratedSecret, generated_secret_manifest
from actormesh_operator.reconcile.errors import action
from actormesh_operator.reconcile.kube import MERGE_PATCH, KubeApiError, KubeClient
from actormesh_operator.reconcile.observe import SECRETS

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


async def ensure_generated_secret(kube: KubeClient, mesh: ActorMesh, secret: GeneratedSecret) -> str | None:
    """Create `secret` or add its missing keys; returns what was done (for the Applied Event) or None."""
    with action(f"read secret {secret.name}"):
        live = await kube.get(SECRETS, secret.name, mesh.namespace)
    if live is None:
        body = {**generated_secret_manifest(mesh, secret), "data": _encoded(secret.keys, secret.random_bytes)}
        try:
            with action(f"create secret {secret.name}"):
                await kube.request("POST", SECRETS.path(mesh.namespace), body=body)
        except KubeApiError as exc:
            if exc.status != 409:
                raise
            # Created by someone else in between (another operator pass): use theirs.
            return await ensure_generated_secret(kube, mesh, secret)
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
        await kube.request(
            "PATCH", SECRETS.path(mesh.namespace, secret.name), body=patch, content_type=MERGE_PATCH
        )
    logger.info("added keys %s to secret %s/%s", ", ".join(missing), mesh.namespace, secret.name)
    return f"secret {secret.name} (added {', '.join(missing)})"


async def ensure_generated_secrets(
    kube: KubeClient, mesh: ActorMesh, wanted: Iterable[GeneratedSecret]
) -> list[str]:
    done = [await ensure_generated_secret(kube, mesh, secret) for secret in wanted]
    return [d for d in done if d is not None]
