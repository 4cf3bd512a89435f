"""Runtime settings: the only place the runtime reads environment variables.

One `RuntimeSettings` object per process, built once in the CLI entry point and passed down.
Variable names follow the seed deployment guide where it has one (NATS_URL, REDIS_URL, ...).
Every field is documented in README.md's configuration table; keep the two in step.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    jwt_secret: str | None = Field(None, description="Set: /api/chat, /ws and history need a bearer JWT.")
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
