"""`actormesh chat` sends every message with an `Idempotency-Key`: an answer lost on the way back (the
connection closed after the gateway took the request) is asked for again under the same key, and the
turn runs once. A real mesh behind a local proxy that drops the first answer."""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from pathlib import Path

import pytest
from aiohttp import web

from actormesh_runtime.gateway.idempotency import idempotent_message_id
from tests.support.cli_process import ACTORMESH, acommunicate
from tests.support.gateway import JOHN, counting, gateway_stack, stack_settings
from tests.support.http_stub import forward, serving

pytestmark = pytest.mark.integration

GUARD_S = 120.0
"""A margin against a hang, not a measurement."""


async def chat_cli(base: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "NATS_", "OTEL_"))}
    proc = await asyncio.create_subprocess_exec(
        *ACTORMESH, "chat", "--url", base, "--email", JOHN, "--json", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await acommunicate(proc, GUARD_S)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_an_answer_lost_on_the_way_back_is_asked_for_again_and_the_turn_runs_once(
    nats_server: str, tmp_path: Path
) -> None:
    runs: Counter[str] = Counter()
    keys: list[str | None] = []

    async with gateway_stack(stack_settings(nats_server, tmp_path), factory=counting(runs)) as stack:

        async def loses_the_first_answer(request: web.Request) -> web.Response:
            keys.append(request.headers.get("Idempotency-Key"))
            status, body = await forward(stack.url, request)
            if len(keys) == 1:  # the gateway answered; the client never hears it
                assert request.transport is not None
                request.transport.close()
            return web.Response(status=status, body=body, content_type="application/json")

        async with serving(loses_the_first_answer) as proxy:
            code, out, err = await chat_cli(proxy, "Where is my order ORD-10002?")
            assert code == 0, err
            assert "trying again" in err
            first, retried = keys
            assert first is not None
            assert retried == first, "the retry went under another key"
            answer = json.loads(out)
            assert answer["message_id"] == idempotent_message_id(JOHN, first)

            # The key printed on a failure sends the very same message again: the same turn's answer.
            code, out, err = await chat_cli(proxy, "Where is my order ORD-10002?", "--key", first)
            assert code == 0, err
            assert json.loads(out)["message_id"] == answer["message_id"]

    assert sum(runs.values()) == 1, runs
