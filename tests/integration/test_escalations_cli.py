"""`actormesh token --role agent` and `actormesh escalations …` as an agent runs them, against a real
gateway with auth on (real nats-server, SQLite): the whole life of an escalation from the shell."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
import jwt
import pytest

from actormesh_runtime.gateway.auth import mint_token
from tests.support.cli_process import acommunicate
from tests.support.gateway import JOHN, gateway_stack, poll_json, stack_settings

pytestmark = pytest.mark.integration

SECRET = "cli-agent-secret-with-enough-length-0123"
AGENT = "ann@shop.example"
ACTORMESH = [sys.executable, "-m", "actormesh_runtime.cli"]


async def actormesh(*args: str, secret: str | None = SECRET) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "JWT_SECRET"} | (
        {"JWT_SECRET": secret} if secret else {}
    )
    proc = await asyncio.create_subprocess_exec(
        *ACTORMESH, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await acommunicate(proc, 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_token_role_agent() -> None:
    code, out, err = await actormesh("token", "--email", "Ann@Shop.example", "--role", "agent")
    assert code == 0, err
    claims = jwt.decode(out.strip(), SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["role"]) == (AGENT, "agent")
    code, out, err = await actormesh("token", "--email", JOHN)
    assert code == 0, err
    assert "role" not in jwt.decode(out.strip(), SECRET, algorithms=["HS256"])


async def test_an_escalation_from_the_shell(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path, jwt_secret=SECRET)
    customer = {"Authorization": f"Bearer {mint_token(SECRET, JOHN)}"}
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=60) as api:
        body = {"message": "I want to talk to a human", "customer_email": JOHN, "session_id": "cli"}
        chat = await api.post("/api/chat", json=body, headers=customer)
        ref = chat.json()["reference_id"]
        agent_headers = {"Authorization": f"Bearer {mint_token(SECRET, AGENT, role='agent')}"}
        await poll_json(api, f"/api/escalations/{ref}", headers=agent_headers)
        url = ("--url", stack.url, "--agent", AGENT)

        code, out, err = await actormesh("escalations", "list", "--state", "open", *url)
        assert code == 0, err
        assert ref in out
        assert "normal" in out
        code, out, err = await actormesh("escalations", "reply", ref, "too early", *url)
        assert (code, err.strip()) == (1, f"error 409: {ref} is open; claim it before replying")
        code, out, err = await actormesh("escalations", "claim", ref, *url)
        assert code == 0, err
        assert AGENT in out
        code, out, err = await actormesh("escalations", "reply", ref, "Hi John, it ships today.", *url)
        assert code == 0, err
        code, out, err = await actormesh("escalations", "show", ref, "--json", *url)
        assert code == 0, err
        shown = json.loads(out)
        assert [r["text"] for r in shown["escalation"]["replies"]] == ["Hi John, it ships today."]
        assert shown["turns"][-1]["author"] == AGENT
        code, out, err = await actormesh("escalations", "resolve", ref, "--note", "shipped", *url)
        assert code == 0, err
        assert "resolved" in out
        # A customer's token is refused, and so is a missing reference.
        code, _, err = await actormesh(
            "escalations", "list", "--url", stack.url, "--token", customer["Authorization"][7:]
        )
        assert code == 1
        assert err.startswith("error 403")
        code, _, err = await actormesh("escalations", "claim", *url)
        assert code == 2
        assert "needs a reference" in err
        code, _, err = await actormesh("escalations", "show", "ESC-00000000", *url)
        assert (code, err.split(":")[0]) == (1, "error 404")
