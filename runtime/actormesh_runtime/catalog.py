"""The names every part of ActorMesh agrees on: actors, routes, ports, subjects and environment variables.

Both the runtime and the operator import this module (the operator imports nothing else from the
runtime), so it depends on nothing but the standard library, pydantic and `wire_enum`.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from actormesh_runtime.wire_enum import WireEnum


class ActorName(WireEnum):
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


class DeadLetterReason(WireEnum):
    """Why an envelope was dead-lettered: the last token of its dead-letter subject, and the `reason`
    label of the dead-letter metrics (a bounded set; the free-text reason stays in the record)."""

    PERMANENT = "permanent"
    """The actor raised a PermanentError (or the envelope reached the wrong actor)."""
    EXHAUSTED = "exhausted"
    """Transient failures, timeouts or crashes used up every delivery."""
    INVALID = "invalid"
    """The payload was not an envelope at all."""


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
    HISTORY_BACKUP_DIR = "HISTORY_BACKUP_DIR"
    NATS_MONITOR_URLS = "NATS_MONITOR_URLS"
    HISTORY_BACKUP_INTERVAL_S = "HISTORY_BACKUP_INTERVAL_S"
    HISTORY_BACKUP_RETENTION = "HISTORY_BACKUP_RETENTION"
    HISTORY_BACKUP_PRE_MIGRATION_RETENTION = "HISTORY_BACKUP_PRE_MIGRATION_RETENTION"
    HISTORY_BACKUP_PRE_MIGRATION_MAX_AGE_DAYS = "HISTORY_BACKUP_PRE_MIGRATION_MAX_AGE_DAYS"
    CUSTOMER_API_URL = "CUSTOMER_API_URL"
    ORDERS_API_URL = "ORDERS_API_URL"
    TRACKING_API_URL = "TRACKING_API_URL"
    LITELLM_MODEL = "LITELLM_MODEL"
    LLM_API_BASE = "LLM_API_BASE"
    LLM_API_KEY = "LLM_API_KEY"
    LLM_TEMPERATURE = "LLM_TEMPERATURE"
    LLM_TIMEOUT_S = "LLM_TIMEOUT_S"
    JWT_SECRET = "JWT_SECRET"
    JWT_PREVIOUS_SECRET = "JWT_PREVIOUS_SECRET"
    JWT_ISSUER = "JWT_ISSUER"
    JWT_AUDIENCE = "JWT_AUDIENCE"
    GATEWAY_ANONYMOUS = "GATEWAY_ANONYMOUS"
    NATS_USER = "NATS_USER"
    NATS_PASSWORD = "NATS_PASSWORD"
    NATS_TOKEN = "NATS_TOKEN"
    HISTORY_RETENTION_DAYS = "HISTORY_RETENTION_DAYS"
    NATS_TLS_CA = "NATS_TLS_CA"
    CORS_ORIGINS = "CORS_ORIGINS"
    REQUEST_TIMEOUT_S = "REQUEST_TIMEOUT_S"
    MAX_MESSAGE_CHARS = "MAX_MESSAGE_CHARS"
    ACTOR_CONCURRENCY = "ACTOR_CONCURRENCY"
    DIRECT_HOPS = "DIRECT_HOPS"
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
    OTEL_EXPORTER_OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
    OTEL_EXPORTER_OTLP_HEADERS = "OTEL_EXPORTER_OTLP_HEADERS"
    OTEL_TRACES_SAMPLER = "OTEL_TRACES_SAMPLER"
    OTEL_TRACES_SAMPLER_ARG = "OTEL_TRACES_SAMPLER_ARG"
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
        return [f"{self.prefix}.actor.*", f"{self.prefix}.history", *self.approval_work_subjects]

    @property
    def approvals_execute(self) -> str:
        """JetStream (work stream): an approved action to run, consumed by execution_coordinator."""
        return f"{self.prefix}.approvals.execute"

    @property
    def approvals_outcome(self) -> str:
        """JetStream (work stream): the result of an approved action, consumed by the history service."""
        return f"{self.prefix}.approvals.outcome"

    @property
    def approval_work_subjects(self) -> list[str]:
        return [self.approvals_execute, self.approvals_outcome]

    @property
    def approvals_executor_consumer(self) -> str:
        return "approvals_executor"

    @property
    def approvals_outcome_consumer(self) -> str:
        return "approvals_outcomes"

    @property
    def approvals_created(self) -> str:
        """JetStream (event stream): a new approval request (the console's queue; a notifier's hook)."""
        return f"{self.prefix}.approvals.created"

    @property
    def approvals_updated(self) -> str:
        """JetStream (event stream): a decision, an execution result or a re-escalation."""
        return f"{self.prefix}.approvals.updated"

    def actor(self, name: ActorName | str) -> str:
        return f"{self.prefix}.actor.{ActorName(name).value}"

    def direct(self, name: ActorName | str) -> str:
        """Core NATS subject of an actor's direct hops (`DIRECT_HOPS`; not in any stream). Its hosts
        subscribe in the queue group named like its durable consumer."""
        return f"{self.direct_prefix}{ActorName(name).value}"

    @property
    def any_direct(self) -> str:
        return f"{self.direct_prefix}*"

    @property
    def direct_prefix(self) -> str:
        return f"{self.prefix}.direct."

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
    def history_erase(self) -> str:
        """Core NATS request/reply served by the history service: erase one customer's records
        (`actormesh erase`). A subject of its own so that only the `admin` user may ask it: the gateway
        may publish `history_query`, and a compromised gateway must not erase customers."""
        return f"{self.prefix}.history.erase"

    @property
    def stored_answers(self) -> str:
        """Core NATS request/reply served by the history service: the result stored for a message id
        (the request is the id). response_aggregator asks when a chain runs again, so a rerun answers
        what the first run stored instead of a second, different answer."""
        return f"{self.prefix}.history.answer"

    @property
    def dlq_stream(self) -> str:
        """Limits-retention stream of dead-lettered envelopes (kept for `actormesh dlq`)."""
        return f"ACTORMESH-{self.mesh}-DLQ"

    def dlq(self, actor: ActorName | str, reason: DeadLetterReason | None = None) -> str:
        """`<prefix>.dlq.<actor>.<reason>`; without a reason, the wildcard over every reason (what a
        permission or a filter names)."""
        tail = reason.value if reason is not None else "*"
        return f"{self.prefix}.dlq.{ActorName(actor).value}.{tail}"

    @property
    def dlq_prefix(self) -> str:
        return f"{self.prefix}.dlq"

    @property
    def dlq_subjects(self) -> list[str]:
        # `>` rather than `<actor>.<reason>`: records stored before reasons were in the subject
        # (`dlq.<actor>`) still match after the stream's subjects are updated.
        return [f"{self.prefix}.dlq.>"]

    @property
    def escalations_stream(self) -> str:
        """Limits-retention stream of escalation events: the hook for external notification systems."""
        return f"ACTORMESH-{self.mesh}-ESCALATIONS"

    @property
    def escalations_created(self) -> str:
        """JetStream: one `EscalationEvent` per new escalation record, published by the history service
        after the record is committed (de-duplicated per ref). Consume it to notify people."""
        return f"{self.prefix}.escalations.created"

    @property
    def escalations_updated(self) -> str:
        """JetStream: an `EscalationEvent` after every claim, agent reply and resolve (gateways
        deliver agent replies to the customer's sockets from it)."""
        return f"{self.prefix}.escalations.updated"

    @property
    def escalation_event_subjects(self) -> list[str]:
        """Everything people work on: escalations and approval requests (one event stream)."""
        return [
            self.escalations_created,
            self.escalations_updated,
            self.approvals_created,
            self.approvals_updated,
        ]

    @property
    def escalations_lookup(self) -> str:
        """Core NATS request/reply served by the history service: a customer's follow-up on a
        reference and the queue behind a new escalation (actors ask; only these two questions)."""
        return f"{self.prefix}.escalations.lookup"

    def replies(self, instance_id: str) -> str:
        """Per-gateway-instance inbox prefix (core NATS); results go to `<prefix>.result`."""
        return f"{self.prefix}.reply.{instance_id}"

    # --- wildcards used by the NATS permission table ---------------------------------------------

    @property
    def any_actor(self) -> str:
        """Every actor inbox (a slip may name any actor next)."""
        return f"{self.prefix}.actor.*"

    @property
    def any_reply(self) -> str:
        """Every gateway instance's (or `actormesh ask`'s) results and progress events."""
        return f"{self.prefix}.reply.>"


# --- NATS users and their permissions ----------------------------------------------------------------

GATEWAY_USER = "gateway"
HISTORY_USER = "history"
ADMIN_USER = "admin"
"""The `actormesh dlq` and `actormesh ask` command-line tools, run by a human."""
NATS_USERS: tuple[str, ...] = (*(a.name.value for a in ACTORS), GATEWAY_USER, HISTORY_USER, ADMIN_USER)
"""One NATS user per component. KEDA and Prometheus read the monitoring port (HTTP, no NATS user)."""
INBOX_ROOT = "_INBOX"


def inbox_prefix(user: str) -> str:
    """The reply-inbox prefix `user` must connect with (nats-py `inbox_prefix=`), so that no component
    can subscribe to another's JetStream API replies, pulled messages or history answers."""
    return f"{INBOX_ROOT}.{user}"


class NatsPermissions(BaseModel):
    """What one NATS user may publish and subscribe to (NATS `authorization.users[].permissions`)."""

    model_config = ConfigDict(frozen=True)

    user: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool = False
    """May publish to the reply subject of a request it received (the history query responder)."""
    inbox_prefix: str


def _js_api(*parts: str) -> str:
    return ".".join(("$JS.API", *parts))


def _ensure_streams(subjects: Subjects) -> list[str]:
    """`bus.connection.ensure_streams`: look up, create or update the work, dead-letter and
    escalation-event streams."""
    return [
        _js_api("STREAM", verb, stream)
        for stream in (subjects.stream, subjects.dlq_stream, subjects.escalations_stream)
        for verb in ("INFO", "CREATE", "UPDATE")
    ]


def _durable_consumer(subjects: Subjects, consumer: str) -> list[str]:
    """Create, look up, pull from and acknowledge on one durable consumer of the work stream, and delete
    it: a consumer changed by hand in a way JetStream cannot undo in place (made push based, another
    deliver policy) is put back by deleting and creating it (`bus.reconcile.restore_consumer`). Its own
    consumer only: deleting it costs no more than the user could already do to its messages (nak or
    term them), and the work-queue stream keeps them for the consumer created again."""
    stream = subjects.stream
    return [
        _js_api("CONSUMER", "CREATE", stream, consumer),
        _js_api("CONSUMER", "CREATE", stream, consumer, ">"),
        _js_api("CONSUMER", "DURABLE", "CREATE", stream, consumer),
        _js_api("CONSUMER", "INFO", stream, consumer),
        _js_api("CONSUMER", "DELETE", stream, consumer),
        _js_api("CONSUMER", "MSG", "NEXT", stream, consumer),
        _acks(subjects, consumer),
    ]


def _acks(subjects: Subjects, consumer: str) -> str:
    """Ack, nak, +WPI and term of any message delivered by one durable consumer of the work stream."""
    return f"$JS.ACK.{subjects.stream}.{consumer}.>"


def _direct_hops_publish(subjects: Subjects) -> list[str]:
    """What direct hops (`DIRECT_HOPS`) add to an actor's publish list: any actor's direct subject, to
    hand it the envelope, or to ask it to settle a chain's first JetStream delivery that its consumer
    made (a sealed settle, `bus.direct.RemoteOrigin`). Not other consumers' acks: only the actor whose
    consumer delivered a message acks it, as without direct hops."""
    return [subjects.any_direct]


ESCALATION_LOOKUP_ACTORS = frozenset({ActorName.CONTEXT_RETRIEVER, ActorName.ESCALATION_ROUTER})
"""The actors that ask the history service about escalations (a follow-up's record; the queue)."""


def _actor_permissions(subjects: Subjects, actor: ActorName, *, direct_hops: bool = False) -> NatsPermissions:
    """One actor's allow-lists; `direct_hops` adds the direct-hop subjects (`_direct_hops_publish`, and
    its own direct subject to receive on), which a mesh without direct hops does not grant."""
    user = actor.value
    publish = [
        subjects.any_actor,
        subjects.history_events,
        subjects.dlq(actor),
        subjects.any_reply,
        *_ensure_streams(subjects),
        *_durable_consumer(subjects, subjects.consumer(actor)),
    ]
    if actor in ESCALATION_LOOKUP_ACTORS:
        publish.append(subjects.escalations_lookup)
    if actor is ActorName.RESPONSE_AGGREGATOR:
        publish.append(subjects.stored_answers)
    if actor is ActorName.EXECUTION_COORDINATOR:
        # Approved actions: it runs them (the only actor with the commerce API's mutations) and
        # reports each result for the history service to record.
        publish += [
            *_durable_consumer(subjects, subjects.approvals_executor_consumer),
            subjects.approvals_outcome,
        ]
    subscribe = [f"{inbox_prefix(user)}.>"]
    if direct_hops:
        publish += _direct_hops_publish(subjects)
        subscribe.append(subjects.direct(actor))
    return NatsPermissions(
        user=user,
        publish=tuple(dict.fromkeys(publish)),
        subscribe=tuple(subscribe),
        inbox_prefix=inbox_prefix(user),
    )


def _gateway_permissions(subjects: Subjects) -> NatsPermissions:
    # A new envelope only ever enters at the first step: the gateway cannot skip the screening actors.
    publish = [subjects.actor(DEFAULT_ROUTE[0]), subjects.history_query, *_ensure_streams(subjects)]
    return NatsPermissions(
        user=GATEWAY_USER,
        publish=tuple(publish),
        # The escalation events: live updates for agents (/ws/agent), agent replies for customers.
        subscribe=(
            subjects.any_reply,
            *subjects.escalation_event_subjects,
            f"{inbox_prefix(GATEWAY_USER)}.>",
        ),
        inbox_prefix=inbox_prefix(GATEWAY_USER),
    )


def _history_permissions(subjects: Subjects) -> NatsPermissions:
    publish = [
        *_ensure_streams(subjects),
        *_durable_consumer(subjects, subjects.history_consumer),
        # The mesh's queue gauges (bus/queue_metrics.py): every consumer's backlog, read-only.
        _js_api("CONSUMER", "INFO", subjects.stream, "*"),
        # It alone changes escalation and approval records, so it alone announces them, and it
        # hands approved actions to execution_coordinator and records their results.
        *subjects.escalation_event_subjects,
        subjects.approvals_execute,
        *_durable_consumer(subjects, subjects.approvals_outcome_consumer),
    ]
    return NatsPermissions(
        user=HISTORY_USER,
        publish=tuple(publish),
        subscribe=(
            subjects.history_query,
            subjects.history_erase,
            subjects.escalations_lookup,
            subjects.stored_answers,
            f"{inbox_prefix(HISTORY_USER)}.>",
        ),
        allow_responses=True,
        inbox_prefix=inbox_prefix(HISTORY_USER),
    )


def _admin_permissions(subjects: Subjects) -> NatsPermissions:
    dlq = subjects.dlq_stream
    events = subjects.escalations_stream
    publish = [
        subjects.any_actor,
        subjects.history_query,
        # `actormesh erase`: the customer's records in the store, then their dead letters and their
        # escalation and approval events, found and deleted one message at a time.
        subjects.history_erase,
        *_ensure_streams(subjects),
        _js_api("STREAM", "MSG", "GET", dlq),
        _js_api("STREAM", "MSG", "DELETE", dlq),
        _js_api("DIRECT", "GET", dlq),
        _js_api("DIRECT", "GET", dlq, ">"),
        _js_api("STREAM", "MSG", "GET", events),
        _js_api("STREAM", "MSG", "DELETE", events),
    ]
    return NatsPermissions(
        user=ADMIN_USER,
        publish=tuple(publish),
        subscribe=(subjects.any_reply, f"{inbox_prefix(ADMIN_USER)}.>"),
        inbox_prefix=inbox_prefix(ADMIN_USER),
    )


GROUP_USER_PREFIX = "group_"


def group_nats_user(group: str) -> str:
    """The NATS user of a process running a group of actors (`actormesh actor A,B,...` in the operator's
    `spec.actors.groups`). Group names are DNS labels, so `-` → `_` is one-to-one, and the prefix keeps
    it apart from the actor, gateway, history and admin users."""
    return GROUP_USER_PREFIX + group.replace("-", "_")


def colocated_permissions(
    subjects: Subjects, user: str, actors: Iterable[ActorName], *, direct_hops: bool = False
) -> NatsPermissions:
    """What one process running several actors on one connection needs: the union of their allow-lists
    (with direct hops, each member's direct subject to receive on), with its own reply inbox."""
    publish: dict[str, None] = {}
    subscribe: dict[str, None] = {f"{inbox_prefix(user)}.>": None}
    for actor in actors:
        member = _actor_permissions(subjects, actor, direct_hops=direct_hops)
        publish.update(dict.fromkeys(member.publish))
        subscribe.update(dict.fromkeys(s for s in member.subscribe if s != f"{member.inbox_prefix}.>"))
    return NatsPermissions(
        user=user,
        publish=tuple(publish),
        subscribe=tuple(subscribe),
        inbox_prefix=inbox_prefix(user),
    )


def nats_permissions(subjects: Subjects, component: str, *, direct_hops: bool = False) -> NatsPermissions:
    """The publish/subscribe allow-lists of one component (an actor name, `gateway`, `history` or
    `admin`); everything else is denied by the server. `direct_hops` (the mesh's `DIRECT_HOPS`) adds
    the direct subjects to the actors' lists only. Raises ValueError for an unknown component."""
    if component == GATEWAY_USER:
        return _gateway_permissions(subjects)
    if component == HISTORY_USER:
        return _history_permissions(subjects)
    if component == ADMIN_USER:
        return _admin_permissions(subjects)
    try:
        actor = ActorName(component)
    except ValueError:
        raise ValueError(
            f"unknown NATS component {component!r}; expected one of {', '.join(NATS_USERS)}"
        ) from None
    return _actor_permissions(subjects, actor, direct_hops=direct_hops)
