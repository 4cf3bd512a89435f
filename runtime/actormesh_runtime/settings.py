"""Runtime settings: the only place the runtime reads environment variables.

One `RuntimeSettings` object per process, built once in the CLI entry point and passed down.
Variable names follow the seed deployment guide where it has one (NATS_URL, REDIS_URL, ...).
Every field is documented in README.md's configuration table; keep the two in step.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    nats_user: str | None = Field(None, description="NATS user name; unset = connect without credentials.")
    nats_password: str | None = Field(None, description="Password of NATS_USER (from a Secret).")
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
    llm_temperature: float = Field(0.3, ge=0, le=2, description="Sampling temperature of LLM calls.")
    llm_timeout_s: float = Field(
        10.0, gt=0, description="Per-call LLM timeout; on expiry rules/templates answer."
    )

    # --- bus and actor hosting
    actor_concurrency: int = Field(8, ge=1, description="In-flight messages per actor replica.")
    fetch_batch: int = Field(8, ge=1, description="Messages fetched per pull request.")
    processing_timeout_s: float = Field(20.0, gt=0, description="One actor's budget for one message.")
    ack_wait_s: float = Field(30.0, gt=0, description="Must exceed processing_timeout_s.")
    max_deliver: int = Field(4, ge=1, description="Deliveries before an envelope is dead-lettered.")
    redelivery_backoff_s: list[float] = Field(
        default_factory=lambda: [1.0, 2.0, 5.0], description="Redelivery delay per attempt (JSON list)."
    )
    drain_grace_s: float = Field(25.0, gt=0, description="SIGTERM: time to finish in-flight messages.")
    duplicate_window_s: float = Field(120.0, gt=0, description="JetStream de-duplication window.")
    actor_http_port: int = Field(8080, ge=0, le=65535, description="/healthz /readyz /metrics; 0 = random.")

    # --- gateway
    host: str = Field(
        "127.0.0.1", description="Bind address of the gateway and of health ports; 0.0.0.0 in pods."
    )
    port: int = Field(8000, ge=0, le=65535, description="Gateway port.")
    request_timeout_s: float = Field(30.0, gt=0, description="Longest a caller waits for a reply.")
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

    # --- logging
    log_format: Literal["json", "text"] = Field(
        "text", description="json in containers, text for a terminal."
    )
    log_level: str = Field("INFO", description="Python logging level name.")

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
        if (self.nats_tls_cert is None) != (self.nats_tls_key is None):
            raise ValueError("NATS_TLS_CERT and NATS_TLS_KEY are set together or not at all")
        return self
