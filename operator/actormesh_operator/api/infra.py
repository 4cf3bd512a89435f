"""`spec.nats`, `spec.redis` and `spec.history`: the mesh's stateful infrastructure.

Part of the spec model (re-exported by `api/spec.py`). Each managed component is a StatefulSet with a
PVC; NATS and Redis may instead point at an existing server (`external`), which excludes the managed
settings (checked here and by CEL rules in the CRD).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from actormesh_operator.api.addresses import CheckedString, url_pattern
from actormesh_operator.api.types import (
    DNS1123_SUBDOMAIN,
    SECRET_KEY,
    ApiModel,
    PositiveQuantity,
    Quantity,
    Resources,
    SecretKeyRef,
    Storage,
    quantity_bytes,
)

_NATS_URL = url_pattern("nats|tls|ws|wss", r"([/?#][^\s,]*)?", excluded=",")
NATS_URL_PATTERN = rf"^{_NATS_URL}(,{_NATS_URL})*$"
NATS_URL_WITH_PASSWORD = r"(^|,)(nats|tls|ws|wss)://[^/?#@,]*@"
"""Any of the comma-separated URLs with credentials: `user:password@`, `:password@`, or a bare `token@`
(NATS token auth). Like the Redis URL, it goes into the runtime ConfigMap."""
NATS_PASSWORD_IN_URL = (
    "spec.nats.external.url must not contain a password or a token (the URL is stored in a ConfigMap);"
    " put the user and password in a Secret and set spec.nats.external.credentialsSecretRef,"
    " or the token and set spec.nats.external.tokenSecretRef"
)
NATS_TWO_CREDENTIALS = (
    "spec.nats.external sets credentialsSecretRef or tokenSecretRef, not both (a NATS client connects"
    " with a user and password or with a token)"
)
NatsUrl = Annotated[
    str,
    CheckedString(
        NATS_URL_PATTERN,
        "must be NATS server URLs separated by commas, each nats://, tls://, ws:// or wss://, a host name or"
        " [IPv6 address] and an optional port up to 65535, e.g. nats://nats.infra:4222",
        max_length=2048,
    ),
]
REDIS_URL_PATTERN = "^" + url_pattern("rediss?", r"([/?#]\S*)?") + "$"
RedisUrl = Annotated[
    str,
    CheckedString(
        REDIS_URL_PATTERN,
        "must be a redis:// or rediss:// URL: a host name or [IPv6 address], an optional port up to 65535"
        " and database, e.g. redis://redis.infra:6379/0",
        max_length=2048,
    ),
]
REDIS_URL_WITH_PASSWORD = r"^rediss?://[^/@]*:[^/@]*@"
"""`scheme://user:password@` (or `:password@`): the URL goes into the runtime ConfigMap, readable by anyone
who may read ConfigMaps, so a password there is refused."""
REDIS_PASSWORD_IN_URL = (
    "spec.redis.external.url must not contain a password (the URL is stored in a ConfigMap);"
    " put it in a Secret and set spec.redis.external.passwordSecretRef"
)
FILE_STORE_SHARE_PERCENT = 80
"""Default JetStream file store limit as a share of the NATS volume (10Gi → 8Gi)."""
MAX_FILE_STORE_TOO_BIG = "spec.nats.jetstream.maxFileStore must not exceed spec.nats.storage.size"


class NatsStorage(Storage):
    """The volume of each managed NATS server (JetStream's file store)."""

    size: PositiveQuantity = "10Gi"
    """Requested capacity; immutable."""


class JetStreamLimits(ApiModel):
    """JetStream resource limits of the managed NATS servers."""

    max_memory: Quantity = "256Mi"
    """Memory-backed stream storage per server."""
    max_file_store: Quantity | None = None
    """File-backed stream storage per server, at most `spec.nats.storage.size` (unset: 80% of it, leaving
    room for the server's own files)."""


class NatsCredentialsRef(ApiModel):
    """A Secret holding the NATS user name and password the mesh's pods connect with."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)
    """Name of the Secret, in the mesh's namespace."""
    user_key: str = Field("user", min_length=1, max_length=253, pattern=SECRET_KEY)
    """Key of the user name (the pods get it as NATS_USER)."""
    password_key: str = Field("password", min_length=1, max_length=253, pattern=SECRET_KEY)
    """Key of the password (the pods get it as NATS_PASSWORD)."""


class NatsExternal(ApiModel):
    """An existing NATS server or cluster (JetStream enabled) instead of the managed one."""

    url: NatsUrl
    """Client URL(s), comma-separated, e.g. `nats://nats.infra:4222`; no password (it would land in a
    ConfigMap)."""
    credentials_secret_ref: NatsCredentialsRef | None = None
    """Secret with the user and password every NATS client pod connects with (unset: none). The pods
    share this one user; its reply inbox prefix is `_INBOX.<user>` (docs/security.md lists the
    permissions it needs)."""
    token_secret_ref: SecretKeyRef | None = None
    """Secret key holding the token every NATS client pod connects with (NATS_TOKEN), for a server
    with token authentication; excludes `credentialsSecretRef`."""

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> NatsExternal:
        if self.credentials_secret_ref is not None and self.token_secret_ref is not None:
            raise ValueError(NATS_TWO_CREDENTIALS)
        return self

    @field_validator("url")
    @classmethod
    def _no_password_in_url(cls, value: str) -> str:
        if re.search(NATS_URL_WITH_PASSWORD, value):
            raise ValueError(NATS_PASSWORD_IN_URL)
        return value


class NatsTLS(ApiModel):
    """TLS on the managed NATS's client port, with a certificate you provide (e.g. from cert-manager)."""

    secret_name: str = Field(max_length=253, pattern=DNS1123_SUBDOMAIN)
    """A `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`) valid for `<mesh>-nats.<namespace>.svc` and
    `<mesh>-nats.<namespace>.svc.<cluster domain>`; it also holds the CA the clients verify it with."""
    ca_key: str = Field("ca.crt", min_length=1, max_length=253, pattern=SECRET_KEY)
    """Key of the CA certificate in that Secret (cert-manager writes `ca.crt`)."""


class NatsSpec(ApiModel):
    """The message bus: a managed JetStream StatefulSet (default) or an external URL."""

    replicas: Literal[1, 3] = 1
    """1, or 3 for a clustered JetStream with R3 streams."""
    storage: NatsStorage = Field(default_factory=NatsStorage)
    jetstream: JetStreamLimits = Field(default_factory=JetStreamLimits)
    image: str | None = Field(None, min_length=1)
    """nats-server image (unset: the operator's default)."""
    resources: Resources = Field(
        default_factory=lambda: Resources(
            requests={"cpu": "100m", "memory": "256Mi"}, limits={"memory": "512Mi"}
        )
    )
    tls: NatsTLS | None = None
    """TLS for client connections (unset: plain TCP inside the cluster, protected by NetworkPolicies and
    per-component passwords). Cluster routes between the servers stay plain."""
    external: NatsExternal | None = None
    """Use this NATS instead of deploying one; excludes the managed settings."""

    @property
    def managed(self) -> bool:
        return self.external is None

    def max_file_store_bytes(self) -> int:
        """JetStream's file store limit in bytes: the explicit one, else 80% of the volume."""
        if self.jetstream.max_file_store is not None:
            return quantity_bytes(self.jetstream.max_file_store)
        return quantity_bytes(self.storage.size) * FILE_STORE_SHARE_PERCENT // 100

    @model_validator(mode="after")
    def _file_store_fits_the_volume(self) -> NatsSpec:
        limit = self.jetstream.max_file_store
        if limit is not None and quantity_bytes(limit) > quantity_bytes(self.storage.size):
            raise ValueError(MAX_FILE_STORE_TOO_BIG)
        return self

    @model_validator(mode="after")
    def _external_excludes_managed(self) -> NatsSpec:
        managed = {"replicas", "storage", "jetstream", "image", "resources", "tls"} & self.model_fields_set
        if self.external is not None and managed:
            raise ValueError(
                f"spec.nats.external cannot be combined with the managed settings"
                f" spec.nats.{{{', '.join(sorted(managed))}}}"
            )
        return self


class RedisExternal(ApiModel):
    """An existing Redis instead of the managed one."""

    url: RedisUrl
    """e.g. `redis://redis.infra:6379/0` or `rediss://...`; no password (it would land in a ConfigMap)."""
    password_secret_ref: SecretKeyRef | None = None
    """Secret key holding the password (unset: none)."""

    @field_validator("url")
    @classmethod
    def _no_password_in_url(cls, value: str) -> str:
        if re.match(REDIS_URL_WITH_PASSWORD, value):
            raise ValueError(REDIS_PASSWORD_IN_URL)
        return value


class RedisSpec(ApiModel):
    """Cache and session store: managed single-replica StatefulSet, external, or disabled (in-process)."""

    enabled: bool = True
    """false: no Redis; actors cache in process."""
    storage: Storage = Field(default_factory=Storage)
    image: str | None = Field(None, min_length=1)
    """redis image (unset: the operator's default)."""
    resources: Resources = Field(
        default_factory=lambda: Resources(
            requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "256Mi"}
        )
    )
    password_secret_ref: SecretKeyRef | None = None
    """Secret key holding the password the managed Redis requires; the runtime pods get it as
    REDIS_PASSWORD. Unset: the operator generates one into the Secret `<mesh>-redis-auth`."""
    external: RedisExternal | None = None
    """Use this Redis instead of deploying one; excludes the managed settings."""

    @property
    def managed(self) -> bool:
        return self.enabled and self.external is None

    def password_ref(self) -> tuple[str, SecretKeyRef] | None:
        """(spec field, Secret key) of the password the runtime pods send to Redis, if any."""
        if self.managed and self.password_secret_ref is not None:
            return "spec.redis.passwordSecretRef", self.password_secret_ref
        if self.enabled and self.external is not None and self.external.password_secret_ref is not None:
            return "spec.redis.external.passwordSecretRef", self.external.password_secret_ref
        return None

    @model_validator(mode="after")
    def _external_excludes_managed(self) -> RedisSpec:
        managed = {"storage", "image", "resources", "password_secret_ref"} & self.model_fields_set
        if self.external is not None and managed:
            raise ValueError(
                f"spec.redis.external cannot be combined with the managed settings"
                f" spec.redis.{{{', '.join(sorted(managed))}}}"
            )
        if self.external is not None and not self.enabled:
            raise ValueError("spec.redis.external requires spec.redis.enabled to be true")
        return self


BACKUP_INTERVAL_PATTERN = r"^[1-9][0-9]{0,5}(m|h|d)$"
BACKUP_CLAIM_OR_STORAGE = (
    "spec.history.backup.existingClaim cannot be combined with spec.history.backup.storage"
    " (storage sizes the PVC the operator creates; with existingClaim you provide it)"
)
_INTERVAL_UNITS = {"m": 60, "h": 3600, "d": 86400}


class BackupStorage(Storage):
    """The history backups' own volume."""

    size: PositiveQuantity = "5Gi"
    """Requested capacity."""


class HistoryBackupSpec(ApiModel):
    """Scheduled online snapshots of the history store, taken by the history service itself.

    The service is the single writer and holds the only mount of the database, so it takes the
    snapshots (SQLite `VACUUM INTO`, consistent while it keeps writing) rather than a CronJob, which
    could not mount the ReadWriteOnce volume next to it."""

    enabled: bool = False
    interval: str = Field("6h", pattern=BACKUP_INTERVAL_PATTERN)
    """Time between snapshots: minutes, hours or days (`30m`, `6h`, `1d`). Counted from the newest
    snapshot on the volume, so a pod restart neither skips nor repeats one."""
    retention: int = Field(7, ge=1, le=1000)
    """Snapshots kept; the oldest are deleted after each new one."""
    pre_migration_retention: int = Field(1, ge=1, le=100)
    """Copies taken before a schema migration kept, the newest (besides the way back from the running
    release's migration, kept until its age); older ones are deleted. Same bounds as the runtime's
    `HISTORY_BACKUP_PRE_MIGRATION_RETENTION`, so the API server refuses what the pod would."""
    pre_migration_max_age_days: float = Field(30.0, ge=0, le=36500)
    """A copy taken before a migration older than this many days is deleted once a newer snapshot
    exists (it keeps customers erased since); 0 = no age limit. The runtime's
    `HISTORY_BACKUP_PRE_MIGRATION_MAX_AGE_DAYS`."""
    storage: BackupStorage = Field(default_factory=BackupStorage)
    """The PVC the operator creates for the snapshots, `<mesh>-history-backups` (a volume of its own, not
    the database's). It follows `spec.persistence.reclaimPolicy` like the other claims."""
    existing_claim: str | None = Field(None, max_length=253, pattern=DNS1123_SUBDOMAIN)
    """A PVC you provide instead (for example on NFS or another storage class, or shared by several
    meshes: each writes below `<namespace>/<mesh>/`). Excludes `storage`."""

    def interval_seconds(self) -> int:
        return int(self.interval[:-1]) * _INTERVAL_UNITS[self.interval[-1]]

    @model_validator(mode="after")
    def _claim_or_storage(self) -> HistoryBackupSpec:
        if self.existing_claim is not None and "storage" in self.model_fields_set:
            raise ValueError(BACKUP_CLAIM_OR_STORAGE)
        return self


class HistorySpec(ApiModel):
    """The conversation history service: one replica, SQLite on a PersistentVolumeClaim."""

    storage: Storage = Field(default_factory=Storage)
    resources: Resources = Field(
        default_factory=lambda: Resources(
            requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "256Mi"}
        )
    )
    backup: HistoryBackupSpec = Field(default_factory=HistoryBackupSpec)
    """Snapshots of the conversation store (off by default); restoring one: docs/backups.md."""
    retention_days: int | None = Field(None, ge=1, le=36500)
    """Delete conversations whose newest turn is older than this many days, except while an escalation
    or approval in them is unsettled (unset: keep them forever). Snapshots keep them until they rotate
    out."""
