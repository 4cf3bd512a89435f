"""The names every part of ActorMesh agrees on: actors, routes, ports, subjects and environment variables.

Both the runtime and the operator import this module (the operator imports nothing else from the
runtime), so it depends on nothing but the standard library and pydantic.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class ActorName(StrEnum):
    """The nine actors. The value is the actor's name on the bus and on the command line."""

    SENTIMENT_ANALYZER = "sentiment_analyzer"
    INTENT_ANALYZER = "intent_analyzer"
    CONTEXT_RETRIEVER = "context_retriever"
    DECISION_ROUTER = "decision_router"
    EXECUTION_COORDINATOR = "execution_coordinator"
    RESPONSE_GENERATOR = "response_generator"
    GUARDRAIL_VALIDATOR = "guardrail_validator"
    ESCALATION_ROUTER = "escalation_router"
    RESPONSE_AGGREGATOR = "response_aggregator"


class ActorInfo(BaseModel):
    """Static facts about one actor, used by the runtime and by the operator's builders."""

    model_config = ConfigDict(frozen=True)

    name: ActorName
    spec_key: str
    """camelCase key under `spec.actors` in the ActorMesh CRD, e.g. `sentimentAnalyzer`."""
    k8s_name: str
    """DNS-1123 form used in child object names, e.g. `sentiment-analyzer`."""
    uses_llm: bool
    """True when the actor may call litellm (it then gets the LLM settings and egress)."""
    calls_commerce_apis: bool
    """True when the actor calls the customer/orders/tracking APIs."""
    uses_redis: bool
    """True when the actor opens the customer-context cache (it then gets the Redis settings and egress)."""
    description: str


def _info(
    name: ActorName, *, llm: bool = False, apis: bool = False, redis: bool = False, doc: str
) -> ActorInfo:
    words = name.value.split("_")
    return ActorInfo(
        name=name,
        spec_key=words[0] + "".join(w.capitalize() for w in words[1:]),
        k8s_name="-".join(words),
        uses_llm=llm,
        calls_commerce_apis=apis,
        uses_redis=redis,
        description=doc,
    )


ACTORS: tuple[ActorInfo, ...] = (
    _info(ActorName.SENTIMENT_ANALYZER, doc="Sentiment, urgency and escalation cues (VADER)."),
    _info(ActorName.INTENT_ANALYZER, llm=True, doc="Intent and entities; rules, optionally an LLM."),
    _info(ActorName.CONTEXT_RETRIEVER, apis=True, redis=True, doc="Customer, orders and tracking, cached."),
    _info(ActorName.DECISION_ROUTER, doc="Escalate, act or answer: rewrites the rest of the routing slip."),
    _info(
        ActorName.EXECUTION_COORDINATOR,
        apis=True,
        redis=True,
        doc="Idempotent actions against the commerce APIs.",
    ),
    _info(ActorName.RESPONSE_GENERATOR, llm=True, doc="Drafts the reply from the envelope's real data."),
    _info(ActorName.GUARDRAIL_VALIDATOR, doc="Rules-only check of drafts; response_generator regenerates."),
    _info(ActorName.ESCALATION_ROUTER, doc="Human handoff with a reference id; the error handler."),
    _info(ActorName.RESPONSE_AGGREGATOR, doc="Final result to the caller; history event."),
)
ACTORS_BY_NAME: dict[ActorName, ActorInfo] = {a.name: a for a in ACTORS}

DEFAULT_ROUTE: tuple[ActorName, ...] = (
    ActorName.SENTIMENT_ANALYZER,
    ActorName.INTENT_ANALYZER,
    ActorName.CONTEXT_RETRIEVER,
    ActorName.DECISION_ROUTER,
    ActorName.RESPONSE_GENERATOR,
    ActorName.GUARDRAIL_VALIDATOR,
    ActorName.RESPONSE_AGGREGATOR,
)
"""The slip a new envelope starts with; decision_router may insert execution_coordinator after itself."""
ESCALATION_TAIL: tuple[ActorName, ...] = (ActorName.ESCALATION_ROUTER, ActorName.RESPONSE_AGGREGATOR)
"""What decision_router puts after itself when the conversation goes to a human."""
ERROR_ROUTE: tuple[ActorName, ...] = (ActorName.ESCALATION_ROUTER, ActorName.RESPONSE_AGGREGATOR)
"""The error handler: escalation_router in error mode, then response_aggregator."""


class Ports:
    """Well-known container/listen ports (the seed guide's numbers)."""

    GATEWAY = 8000
    CUSTOMER_API = 8001
    ORDERS_API = 8002
    TRACKING_API = 8003
    ACTOR_HTTP = 8080
    """Every actor and the history service serve /healthz, /readyz and /metrics here."""
    HISTORY_HTTP = 8080
    NATS_CLIENT = 4222
    NATS_CLUSTER = 6222
    NATS_MONITOR = 8222
    REDIS = 6379


class Env:
    """Environment variable names read by the runtime. The operator writes exactly these."""

    MESH_NAME = "MESH_NAME"
    NATS_URL = "NATS_URL"
    NATS_STREAM_REPLICAS = "NATS_STREAM_REPLICAS"
    REDIS_URL = "REDIS_URL"
    REDIS_PASSWORD = "REDIS_PASSWORD"
    SQLITE_DB_PATH = "SQLITE_DB_PATH"
    CUSTOMER_API_URL = "CUSTOMER_API_URL"
    ORDERS_API_URL = "ORDERS_API_URL"
    TRACKING_API_URL = "TRACKING_API_URL"
    LITELLM_MODEL = "LITELLM_MODEL"
    LLM_API_BASE = "LLM_API_BASE"
    LLM_API_KEY = "LLM_API_KEY"
    LLM_TEMPERATURE = "LLM_TEMPERATURE"
    LLM_TIMEOUT_S = "LLM_TIMEOUT_S"
    JWT_SECRET = "JWT_SECRET"
    CORS_ORIGINS = "CORS_ORIGINS"
    REQUEST_TIMEOUT_S = "REQUEST_TIMEOUT_S"
    MAX_MESSAGE_CHARS = "MAX_MESSAGE_CHARS"
    ACTOR_CONCURRENCY = "ACTOR_CONCURRENCY"
    ACTOR_HTTP_PORT = "ACTOR_HTTP_PORT"
    CACHE_TTL = "CACHE_TTL"
    API_TIMEOUT_S = "API_TIMEOUT_S"
    CONVERSATION_DEADLINE_S = "CONVERSATION_DEADLINE_S"
    PROCESSING_TIMEOUT_S = "PROCESSING_TIMEOUT_S"
    ESCALATION_CONFIDENCE_THRESHOLD = "ESCALATION_CONFIDENCE_THRESHOLD"
    MAX_CONCURRENT_REQUESTS = "MAX_CONCURRENT_REQUESTS"
    RATE_LIMIT_REQUESTS = "RATE_LIMIT_REQUESTS"
    LOG_FORMAT = "LOG_FORMAT"
    LOG_LEVEL = "LOG_LEVEL"
    HOST = "HOST"
    """Listen address of the gateway, mocks and actor HTTP servers (the operator sets 0.0.0.0 in pods)."""


class Subjects:
    """NATS stream and subject names, namespaced by mesh so two meshes never collide.

    Mesh names are DNS-1123 labels (lowercase letters, digits, dashes), which are valid in both
    subjects and stream names.
    """

    def __init__(self, mesh: str) -> None:
        self.mesh = mesh
        self.prefix = f"actormesh.{mesh}"

    @property
    def stream(self) -> str:
        """Work-queue stream holding every actor's inbox and the history events."""
        return f"ACTORMESH-{self.mesh}"

    @property
    def stream_subjects(self) -> list[str]:
        return [f"{self.prefix}.actor.*", f"{self.prefix}.history"]

    def actor(self, name: ActorName | str) -> str:
        return f"{self.prefix}.actor.{ActorName(name).value}"

    def consumer(self, name: ActorName | str) -> str:
        """Durable pull consumer shared by all replicas of one actor."""
        return ActorName(name).value

    @property
    def history_events(self) -> str:
        return f"{self.prefix}.history"

    @property
    def history_consumer(self) -> str:
        return "history_writer"

    @property
    def history_query(self) -> str:
        """Core NATS request/reply subject served by the history service."""
        return f"{self.prefix}.history.query"

    @property
    def dlq_stream(self) -> str:
        """Limits-retention stream of dead-lettered envelopes (kept for `actormesh dlq`)."""
        return f"ACTORMESH-{self.mesh}-DLQ"

    def dlq(self, actor: ActorName | str) -> str:
        return f"{self.prefix}.dlq.{ActorName(actor).value}"

    @property
    def dlq_subjects(self) -> list[str]:
        return [f"{self.prefix}.dlq.*"]

    def replies(self, instance_id: str) -> str:
        """Per-gateway-instance inbox prefix (core NATS); results go to `<prefix>.result`."""
        return f"{self.prefix}.reply.{instance_id}"
