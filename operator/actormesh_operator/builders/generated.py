"""Secrets the operator generates once per mesh: the gateway's JWT signing key, the NATS passwords and
the managed Redis's password.

Why not server-side apply like every other child: the values are random, so a pure builder cannot
render them, and re-applying would either rotate them (logging every customer out, breaking every NATS
connection) or need the operator to read them back and own them. Instead the builder describes each
Secret — its name, metadata (labels, controller ownerReference) and the keys it must hold — and
`reconcile/generated.py` creates it if absent with fresh random values, or adds only keys that are
missing. An existing value is never overwritten or rotated by the operator, and Secrets are not a
managed kind, so they are never pruned: they live as long as the mesh (garbage-collected with it).
Deleting one makes the operator generate a new one on its next reconcile (a deliberate rotation).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.api.types import SecretKeyRef
from actormesh_operator.builders import labels, names
from actormesh_operator.builders.meta import Manifest, manifest, object_meta
from actormesh_runtime.catalog import NATS_USERS, group_nats_user

JWT_SECRET_KEY = "jwt-secret"
JWT_KEY_BYTES = 48
"""Random bytes behind the generated signing key (the runtime refuses keys under 32 bytes)."""
NATS_PASSWORD_BYTES = 32
REDIS_PASSWORD_KEY = "password"
REDIS_PASSWORD_BYTES = 32
GENERATED_ANNOTATION = "actormesh.io/generated"
GENERATED_NOTE = "random, created once by the operator and never overwritten; delete it to regenerate"


class GeneratedSecret(BaseModel):
    """A Secret the operator creates once; `keys` are filled with `random_bytes` of randomness each."""

    model_config = ConfigDict(frozen=True)

    name: str
    keys: tuple[str, ...]
    random_bytes: int
    component: str
    purpose: str


def gateway_key_generated(mesh: ActorMesh) -> bool:
    """True when the operator provides the gateway's signing key (no authSecretRef, not anonymous)."""
    gw = mesh.spec.gateway
    return gw.auth_secret_ref is None and not gw.anonymous


def nats_auth_enabled(mesh: ActorMesh) -> bool:
    """The managed NATS always requires a user; an external NATS is the user's to secure."""
    return mesh.spec.nats.managed


def gateway_key_ref(mesh: ActorMesh) -> SecretKeyRef | None:
    """Where the gateway's JWT_SECRET comes from: the user's Secret, the generated one, or nowhere."""
    gw = mesh.spec.gateway
    if gw.auth_secret_ref is not None:
        return gw.auth_secret_ref
    if gateway_key_generated(mesh):
        return SecretKeyRef(name=names.gateway_auth_secret(mesh.name), key=JWT_SECRET_KEY)
    return None


def redis_password_generated(mesh: ActorMesh) -> bool:
    """The managed Redis always requires a password: the user's, or one the operator generates."""
    return mesh.spec.redis.managed and mesh.spec.redis.password_secret_ref is None


def redis_password_ref(mesh: ActorMesh) -> SecretKeyRef | None:
    """The password the Redis clients send (and the managed server requires): the user's Secret for the
    managed or external Redis, the generated one for a managed Redis without one, else None."""
    user = mesh.spec.redis.password_ref()
    if user is not None:
        return user[1]
    if redis_password_generated(mesh):
        return SecretKeyRef(name=names.redis_auth_secret(mesh.name), key=REDIS_PASSWORD_KEY)
    return None


def nats_users(mesh: ActorMesh) -> tuple[str, ...]:
    """Every NATS user of the managed server: one per component, plus one per actor group (its process
    connects once for all its members). A group's key stays in the Secret after the group goes (keys
    are only ever added), unused and harmless."""
    return (*NATS_USERS, *(group_nats_user(g.name) for g in mesh.spec.actors.groups))


def external_nats_credentials(mesh: ActorMesh) -> tuple[SecretKeyRef, SecretKeyRef] | None:
    """(user, password) Secret keys of `spec.nats.external.credentialsSecretRef`, if set; the user's
    Secret, not generated, but next to the generated NATS passwords so both sources are read alike."""
    external = mesh.spec.nats.external
    ref = None if external is None else external.credentials_secret_ref
    if ref is None:
        return None
    return SecretKeyRef(name=ref.name, key=ref.user_key), SecretKeyRef(name=ref.name, key=ref.password_key)


def external_nats_token(mesh: ActorMesh) -> SecretKeyRef | None:
    """The Secret key of `spec.nats.external.tokenSecretRef`, if set."""
    external = mesh.spec.nats.external
    return None if external is None else external.token_secret_ref


def nats_password_ref(mesh: ActorMesh, user: str) -> SecretKeyRef:
    return SecretKeyRef(name=names.nats_users_secret(mesh.name), key=user)


def generated_secrets(mesh: ActorMesh) -> list[GeneratedSecret]:
    """Every Secret the operator must make sure exists before the pods that read it are applied."""
    out: list[GeneratedSecret] = []
    if gateway_key_generated(mesh):
        out.append(
            GeneratedSecret(
                name=names.gateway_auth_secret(mesh.name),
                keys=(JWT_SECRET_KEY,),
                random_bytes=JWT_KEY_BYTES,
                component=labels.GATEWAY,
                purpose="gateway JWT signing key (spec.gateway.authSecretRef unset)",
            )
        )
    if redis_password_generated(mesh):
        out.append(
            GeneratedSecret(
                name=names.redis_auth_secret(mesh.name),
                keys=(REDIS_PASSWORD_KEY,),
                random_bytes=REDIS_PASSWORD_BYTES,
                component=labels.REDIS,
                purpose="managed Redis password (spec.redis.passwordSecretRef unset)",
            )
        )
    if nats_auth_enabled(mesh):
        out.append(
            GeneratedSecret(
                name=names.nats_users_secret(mesh.name),
                keys=nats_users(mesh),
                random_bytes=NATS_PASSWORD_BYTES,
                component=labels.NATS,
                purpose="one NATS password per component",
            )
        )
    return out


def generated_secret_manifest(mesh: ActorMesh, secret: GeneratedSecret) -> Manifest:
    """The Secret without its data (the reconcile layer adds random values when it creates it)."""
    meta = object_meta(
        mesh, secret.name, secret.component, annotations={GENERATED_ANNOTATION: GENERATED_NOTE}
    )
    return manifest("v1", "Secret", meta, type="Opaque")
