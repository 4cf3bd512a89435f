"""Operator settings: the only place the operator reads os.environ.

Built once by `main.py` (`OperatorSettings()`, environment prefix `ACTORMESH_OPERATOR_`, command-line
flags override) and passed as an argument to the builders and the reconcile layer; the builders never
read the environment themselves. Every field says why its default was picked.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ACTORMESH_OPERATOR_", case_sensitive=False, extra="ignore", frozen=True
    )

    # --- scope and identity
    namespace: str | None = Field(
        None,
        description="Namespace to watch; unset watches all namespaces (cluster-wide install). The "
        "namespaced install sets it so the operator needs only a Role.",
    )
    kubeconfig: str | None = Field(
        None,
        validation_alias=AliasChoices("ACTORMESH_OPERATOR_KUBECONFIG", "KUBECONFIG"),
        description="kubeconfig file; unset uses the in-cluster service account, else ~/.kube/config. "
        "KUBECONFIG is honoured as kubectl does, so a shell that reaches a cluster runs the operator.",
    )
    field_manager: str = Field(
        "actormesh-operator",
        min_length=1,
        description="Server-side apply field manager for every child. Fixed so a restarted or upgraded "
        "operator owns the same fields and its applies are no-ops on unchanged children.",
    )
    cluster_domain: str = Field(
        "cluster.local",
        description="DNS suffix in the in-cluster URLs written into the runtime ConfigMap "
        "(the kubelet default; change it only if the cluster was built with another).",
    )

    # --- default images for managed infrastructure (a mesh may override them per spec)
    nats_image: str = Field(
        "nats:2.12-alpine",
        description="nats-server image for managed NATS; a recent 2.x line with JetStream and "
        "lame-duck mode, alpine for its shell (the preStop hook).",
    )
    redis_image: str = Field(
        "redis:7.4-alpine",
        description="Redis image for managed Redis; 7.4 is the last BSD-licensed line and is small.",
    )

    # --- reconcile cadence and retries
    resync_interval_s: float = Field(
        300.0,
        gt=0,
        description="Period of the timer that re-runs the reconcile; drift is also caught by watching "
        "children, so this is only a safety net and five minutes keeps API traffic low.",
    )
    resync_jitter_s: float = Field(
        30.0,
        ge=0,
        description="Random spread added to the resync so many meshes do not reconcile in lockstep.",
    )
    retry_limit: int = Field(
        8,
        ge=1,
        description="Attempts per change before the mesh is marked Stalled (kopf alone retries forever).",
    )
    retry_backoff_s: float = Field(
        5.0,
        gt=0,
        description="First retry delay; doubles each attempt up to retry_backoff_max_s.",
    )
    retry_backoff_max_s: float = Field(
        300.0,
        gt=0,
        description="Cap of the retry delay, so a transient outage still recovers within minutes.",
    )

    # --- observability
    log_format: Literal["json", "text"] = Field(
        "json", description="json for log collectors in the cluster; text for a terminal."
    )
    log_level: str = Field("INFO", description="Python logging level name.")
    metrics_port: int = Field(
        8080,
        ge=0,
        le=65535,
        description="Prometheus /metrics port (0 disables); 8080 is the usual metrics port of operators.",
    )
    health_port: int = Field(
        8081,
        ge=0,
        le=65535,
        description="kopf liveness endpoint (/healthz) for the Deployment's probe; 0 disables.",
    )
