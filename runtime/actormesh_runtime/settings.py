"""Runtime settings: the only place the runtime reads environment variables.

One `RuntimeSettings` object per process, built once in the CLI entry point and passed down.
Variable names follow the seed deployment guide where it has one (NATS_URL, REDIS_URL, ...).
Every field is documented in README.md's configuration table; keep the two in step.
"""

from __future__ import annotations

import os
from typing import Any, Literal, Self

from pydantic import AliasChoices, Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

GUIDE_ALIASES: dict[str, str] = {
    "RESPONSE_TEMPERATURE": "LLM_TEMPERATURE",
    "INTENT_TIMEOUT": "LLM_TIMEOUT_S",
    "REQUEST_TIMEOUT": "REQUEST_TIMEOUT_S",
    "ACTOR_POOL_SIZE": "ACTOR_CONCURRENCY",
}
"""The seed deployment guide's variable names → ours. Read when ours is unset, with a start-up warning
naming ours (`startup_warnings`). INTENT_TIMEOUT becomes the timeout of every LLM call, not just intent's."""
GUIDE_WITHOUT_EFFECT: dict[str, str] = {
    "USE_LLM_VALIDATION": "guardrail_validator is rules-only by design (no LLM approves an LLM's draft)",
}
"""Guide names we recognise but do not implement: a start-up warning says so instead of silence."""


def _also(name: str, guide_name: str) -> Any:
    """validation_alias for a field the guide names differently; our name first, so it wins."""
    return AliasChoices(name, guide_name.lower())


EventLoopChoice = Literal["auto", "uvloop", "asyncio"]

MIN_JWT_KEY_BYTES = 32
"""HS256 key floor: the size of the SHA-256 output."""


class RuntimeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # --- identity and infrastructure
    mesh_name: str = Field(
        "local",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Namespaces NATS streams/subjects so meshes never collide.",
    )
    nats_url: str = Field("nats://127.0.0.1:4222", description="NATS server(s), comma-separated.")
    nats_stream_replicas: int = Field(
        1, ge=1, le=5, description="Replicas of the mesh's JetStream streams (3 on a clustered NATS)."
    )
    nats_user: str | None = Field(None, description="NATS user name; unset = connect without credentials.")
    nats_password: str | None = Field(None, description="Password of NATS_USER (from a Secret).")
    nats_token: str | None = Field(
        None, description="NATS token (from a Secret), for a server with token auth; excludes NATS_USER."
    )
    nats_tls_ca: str | None = Field(None, description="CA bundle file: verify the NATS server over TLS.")
    nats_tls_cert: str | None = Field(None, description="Client certificate file for NATS mutual TLS.")
    nats_tls_key: str | None = Field(None, description="Private key file of NATS_TLS_CERT.")
    redis_url: str | None = Field(None, description="Unset: in-process cache and session state.")
    redis_password: str | None = Field(
        None, description="Overrides any password in REDIS_URL (from a Secret)."
    )
    sqlite_db_path: str = Field(
        "./.actormesh/conversations.db", description="History store (history service only)."
    )
    customer_api_url: str = Field("http://127.0.0.1:8001", description="Customers API base URL.")
    orders_api_url: str = Field("http://127.0.0.1:8002", description="Orders API base URL.")
    tracking_api_url: str = Field("http://127.0.0.1:8003", description="Tracking API base URL.")
    cache_ttl: float = Field(300.0, gt=0, description="Customer-context cache TTL, seconds.")
    api_timeout_s: float = Field(5.0, gt=0, description="Per-call timeout to the commerce APIs.")

    # --- LLM (unset LITELLM_MODEL = rules and templates only)
    litellm_model: str | None = Field(
        None, description="litellm model name; unset = rules and templates only."
    )
    llm_api_base: str | None = Field(None, description="Any OpenAI-compatible endpoint.")
    llm_api_key: str | None = Field(
        None, description="Else the provider's usual variable, e.g. OPENAI_API_KEY."
    )
    llm_temperature: float = Field(
        0.3,
        ge=0,
        le=2,
        validation_alias=_also("llm_temperature", "RESPONSE_TEMPERATURE"),
        description="Sampling temperature of LLM calls.",
    )
    llm_timeout_s: float = Field(
        10.0,
        gt=0,
        validation_alias=_also("llm_timeout_s", "INTENT_TIMEOUT"),
        description="Per-call LLM timeout; on expiry rules/templates answer.",
    )

    # --- bus and actor hosting
    actor_concurrency: int = Field(
        8,
        ge=1,
        validation_alias=_also("actor_concurrency", "ACTOR_POOL_SIZE"),
        description="In-flight messages per actor replica.",
    )
    fetch_batch: int = Field(8, ge=1, description="Messages fetched per pull request.")
    processing_timeout_s: float = Field(20.0, gt=0, description="One actor's budget for one message.")
    ack_wait_s: float = Field(
        10.0,
        ge=1.0,
        description="How long JetStream waits for a silent replica (crashed, killed, partitioned) before "
        "it redelivers the message. A running step resets the timer every third of this, so it need not "
        "exceed processing_timeout_s; shorter means a lost message is rerun sooner.",
    )
    max_deliver: int = Field(
        4, ge=1, description="Deliveries (a direct hop's step: attempts) before an envelope is dead-lettered."
    )
    redelivery_backoff_s: list[float] = Field(
        default_factory=lambda: [1.0, 2.0, 5.0], description="Redelivery delay per attempt (JSON list)."
    )
    drain_grace_s: float = Field(25.0, gt=0, description="SIGTERM: time to finish in-flight messages.")
    duplicate_window_s: float = Field(120.0, gt=0, description="JetStream de-duplication window.")
    actor_http_port: int = Field(8080, ge=0, le=65535, description="/healthz /readyz /metrics; 0 = random.")
    event_loop: EventLoopChoice = Field(
        "auto", description="Event loop of long-running commands: auto = uvloop where installed."
    )
    hop_fusion: bool = Field(
        True,
        description="Actors hosted in one process hand envelopes on in memory instead of through the "
        "stream (docs/bus.md). Only a multi-actor process (actormesh dev, ask) has anything to fuse.",
    )
    direct_hops: bool = Field(
        False,
        description="Hops between actor processes go over core NATS and the chain is acked once, at its "
        "end or error path (a crash restarts it from its first step; a failed step is retried where its "
        "hop arrived); off = every hop is a JetStream message (docs/bus.md, direct hops).",
    )
    queue_metrics_interval_s: float = Field(
        15.0,
        ge=0,
        description="History service: refresh of the JetStream queue gauges, seconds; 0 = off.",
    )
    nats_monitor_urls: str | None = Field(
        None,
        description="History service: NATS monitoring endpoints (http://host:8222), comma-separated, read"
        " into the actormesh_nats_server_* metrics every QUEUE_METRICS_INTERVAL_S; unset = not read.",
    )
    history_backup_dir: str | None = Field(
        None, description="History service: directory for snapshots of the store; unset = no backups."
    )
    history_backup_interval_s: float = Field(
        21600.0, ge=60, description="History service: seconds between snapshots (anchored to the newest)."
    )
    history_backup_retention: int = Field(
        7, ge=1, le=1000, description="History service: snapshots kept; older ones are deleted."
    )
    history_backup_pre_migration_retention: int = Field(
        1,
        ge=1,
        le=100,
        description="History service: copies taken before migrations kept, the newest (besides the way"
        " back from the running release's migration, kept until its age); older ones are deleted.",
    )
    history_backup_pre_migration_max_age_days: float = Field(
        30.0,
        ge=0,
        le=36500,
        description="History service: a copy taken before a migration older than this many days is deleted"
        " once a newer snapshot exists (it keeps customers erased since); 0 = no age limit.",
    )
    history_retention_days: float | None = Field(
        None,
        gt=0,
        le=36500,
        description="History service: delete conversations whose newest turn is older than this many days"
        " (kept while an escalation or approval in them is unsettled); unset = keep them forever.",
    )

    # --- gateway
    host: str = Field(
        "127.0.0.1", description="Bind address of the gateway and of health ports; 0.0.0.0 in pods."
    )
    port: int = Field(8000, ge=0, le=65535, description="Gateway port.")
    request_timeout_s: float = Field(
        30.0,
        gt=0,
        validation_alias=_also("request_timeout_s", "REQUEST_TIMEOUT"),
        description="Longest a caller waits for a reply.",
    )
    max_message_chars: int = Field(4000, ge=1, description="Longer chat messages get 413.")
    jwt_secret: str | None = Field(
        None,
        description="HS256 signing key (at least 32 bytes): /api/chat, /ws and history need a bearer JWT. "
        "Unset: the gateway refuses to start unless GATEWAY_ANONYMOUS=true.",
    )
    jwt_previous_secret: str | None = Field(
        None,
        description="The key being rotated out: tokens it signed stay valid while both are set "
        "(at least 32 bytes). New tokens are signed only with JWT_SECRET.",
    )
    jwt_issuer: str | None = Field(None, description="Set: tokens must carry this `iss`.")
    jwt_audience: str | None = Field(None, description="Set: tokens must carry this `aud`.")
    gateway_anonymous: bool = Field(
        False,
        description="Explicit anonymous mode: without JWT_SECRET anyone may act as any customer. "
        "Off by default so a forgotten key stops the gateway instead of opening it.",
    )
    ws_max_frame_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="Largest WebSocket frame the server reads; a bigger one closes the socket (1009) "
        "before it is buffered.",
    )
    ws_chats_per_socket: int = Field(
        4, ge=1, description="Chats in flight on one WebSocket; more get an `error` 429 frame."
    )
    ws_chats_per_customer: int = Field(
        8,
        ge=1,
        description="Chats in flight over all WebSockets of one customer on one gateway replica "
        "(each may be an LLM call); more get an `error` 429 frame.",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Allowed cross-origin callers (JSON list); none by default."
    )
    escalation_confidence_threshold: float = Field(
        0.45, ge=0, le=1, description="Intent confidence below this escalates to a human."
    )
    conversation_deadline_s: float = Field(
        120.0,
        gt=0,
        description="Envelope deadline set by the gateway; longer than request_timeout_s so a "
        "conversation still completes (and is stored) after its caller got a 504.",
    )
    gateway_instance_id: str | None = Field(
        None,
        pattern=r"^[a-z0-9][-a-z0-9]{0,62}$",
        description="Reply-subject token of this gateway replica; unset = random per process.",
    )

    # --- gateway limits (docs/reliability.md); 0 turns each one off
    rate_limit_requests: int = Field(
        120,
        ge=0,
        description="Requests per minute per principal (JWT subject, else client address), shared by "
        "all gateway replicas through Redis; over it: 429 with Retry-After. 0 = off.",
    )
    max_concurrent_requests: int = Field(
        100, ge=0, description="HTTP requests one gateway replica serves at once; more get 503. 0 = off."
    )
    ws_messages_per_minute: int = Field(
        60, ge=0, description="Frames per minute one WebSocket may send; more get an error frame. 0 = off."
    )
    ws_idle_timeout_s: float = Field(
        300.0,
        ge=0,
        description="A WebSocket with no frame and no chat in flight this long is closed. 0 = off.",
    )
    header_read_timeout_s: float = Field(
        10.0, ge=0, description="Time a connection has to send complete request headers; then 408. 0 = off."
    )
    body_read_timeout_s: float = Field(
        10.0, ge=0, description="Time a request body has to arrive after its headers; then 408. 0 = off."
    )
    max_header_bytes: int = Field(
        65536,
        ge=0,
        description="Largest request line + headers of one request, counted as they arrive; more: 431 "
        "(414 for a request line alone) and the connection closed. 0 = off.",
    )

    # --- logging
    log_format: Literal["json", "text"] = Field(
        "text", description="json in containers, text for a terminal."
    )
    log_level: str = Field("INFO", description="Python logging level name.")

    # --- tracing (docs/tracing.md): the OpenTelemetry SDK's standard variables; no endpoint = no export
    otel_exporter_otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP collector base URL (`/v1/traces` is appended); set = spans are exported.",
    )
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        None, description="Full OTLP/HTTP traces URL; wins over OTEL_EXPORTER_OTLP_ENDPOINT."
    )
    otel_exporter_otlp_protocol: str = Field(
        "http/protobuf",
        description="Only http/protobuf is shipped; another value leaves export off with a warning.",
    )
    otel_exporter_otlp_headers: str | None = Field(
        None,
        description="Headers on every export (`key=value,...`, values URL-encoded), e.g. a hosted "
        "backend's API key; from a Secret.",
    )
    otel_service_name: str | None = Field(
        None, description="service.name of the spans; unset = actormesh-<component> (e.g. actormesh-gateway)."
    )
    otel_traces_sampler: Literal[
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    ] = Field(
        "parentbased_always_on",
        description="Which traces are recorded; parent-based ones follow the caller's sampled flag.",
    )
    otel_traces_sampler_arg: float | None = Field(
        None, ge=0, le=1, description="The ratio of the *traceidratio samplers (default 1.0)."
    )
    otel_sdk_disabled: bool = Field(False, description="true: no export, whatever the endpoint says.")

    # --- the seed guide's names (not settings: what the environment held when this object was built)
    _guide_names: dict[str, str] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        environ = {name.upper() for name in os.environ}
        self._guide_names = {
            old: ("set" if new in environ else "used") for old, new in GUIDE_ALIASES.items() if old in environ
        } | {old: "no effect" for old in GUIDE_WITHOUT_EFFECT if old in environ}

    def otlp_traces_endpoint(self) -> str | None:
        """Where spans go, or None when export is off (no endpoint, disabled, or another protocol)."""
        if self.otel_sdk_disabled or self.otel_exporter_otlp_protocol != "http/protobuf":
            return None
        if self.otel_exporter_otlp_traces_endpoint:
            return self.otel_exporter_otlp_traces_endpoint
        if self.otel_exporter_otlp_endpoint:
            return self.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        return None

    def startup_warnings(self) -> list[str]:
        """One line per deployment-guide variable name found in the environment (logged at start-up)."""
        lines = []
        for old, what in sorted(self._guide_names.items()):
            if what == "no effect":
                lines.append(f"{old} has no effect: {GUIDE_WITHOUT_EFFECT[old]}")
            elif what == "set":
                lines.append(
                    f"{old} ignored: {GUIDE_ALIASES[old]} is set (rename {old} to {GUIDE_ALIASES[old]})"
                )
            else:
                lines.append(f"{old} is deprecated: rename it to {GUIDE_ALIASES[old]} (its value is used)")
        if self.otel_exporter_otlp_protocol != "http/protobuf" and not self.otel_sdk_disabled:
            lines.append(
                f"OTEL_EXPORTER_OTLP_PROTOCOL={self.otel_exporter_otlp_protocol} is not supported "
                "(only http/protobuf is installed): traces are not exported"
            )
        return lines

    @field_validator("jwt_secret", "jwt_previous_secret")
    @classmethod
    def _long_enough_key(cls, value: str | None) -> str | None:
        # HS256 keys shorter than the hash output are brute-forceable offline from one token (RFC 7518
        # section 3.2). The message names the length, never the key.
        if value is not None and len(value.encode()) < MIN_JWT_KEY_BYTES:
            raise ValueError(
                f"is {len(value.encode())} bytes; an HS256 key needs at least {MIN_JWT_KEY_BYTES} "
                "(e.g. `openssl rand -base64 48`)"
            )
        return value

    @model_validator(mode="after")
    def _nats_credentials_paired(self) -> Self:
        if (self.nats_user is None) != (self.nats_password is None):
            raise ValueError("NATS_USER and NATS_PASSWORD are set together or not at all")
        if self.nats_token is not None and self.nats_user is not None:
            raise ValueError("NATS_TOKEN excludes NATS_USER and NATS_PASSWORD (one way to authenticate)")
        if (self.nats_tls_cert is None) != (self.nats_tls_key is None):
            raise ValueError("NATS_TLS_CERT and NATS_TLS_KEY are set together or not at all")
        return self
