"""Text that is not plain English ASCII through the real chain: uvicorn, httpx and a WebSocket client,
`LocalMesh` (nine actors, rules mode, mock APIs) on a real nats-server, the history service on a real
SQLite file. Every accepted message is answered, stored as the screened text and read back as
stored; a message with nothing a person can read is refused naming `message`; other languages take
no action the customer did not ask for (docs/gateway.md, docs/actors.md)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from actormesh_runtime.bus import dlq
from actormesh_runtime.screening import screen
from tests.support.eventually import eventually_async
from tests.support.gateway import JANE, JOHN, gateway_stack, stack_settings

pytestmark = pytest.mark.integration


def _in_digits(text: str, zero: int) -> str:
    """`text` with its ASCII digits written in the script whose zero is `zero` (U+0660 Arabic-Indic…)."""
    return "".join(chr(zero + int(c)) if c.isdigit() and c.isascii() else c for c in text)


NOTHING_TO_READ = [
    pytest.param("\u200b\u200c\u200d\u2060\ufeff", id="zero-width"),
    pytest.param("\x00\x01\x07\x1b", id="c0-controls"),
    pytest.param("\u202e\u202c\u200f", id="bidi-controls"),
    pytest.param("\u3000\u00a0\u2800", id="unicode-blanks"),
    pytest.param("\ud800", id="lone-surrogate"),
]

# (id, customer, message, what must hold of the result -> problem or None)
LANGUAGES: list[tuple[str, str, str, Any]] = [
    ("german-articles", JOHN, "Wo ist die Lieferung für ORD-10002? Die Größe, die Farbe, die Adresse.",
     lambda r: None if not r["actions"] and "complaint" not in r["flags"] else (r["actions"], r["flags"])),
    ("german-cancel-word", JANE, "Ich möchte meine Bestellung ORD-20001 stornieren",
     lambda r: None if not r["actions"] else r["actions"]),
    ("spanish-cancelar", JANE, "¿Puedo cancelar mi pedido ORD-20001? Solo pregunto.",
     lambda r: None if not r["actions"] else r["actions"]),
    ("turkish-dotted-capitals", JOHN, "WHERE İS MY ORDER ORD-10002?",
     lambda r: None if r["intent"] == "order_status" else r["intent"]),
    ("greek", JOHN, "Πού είναι η παραγγελία μου;", lambda r: None if not r["actions"] else r["actions"]),
    ("russian", JOHN, "Где мой заказ? Хочу отменить.", lambda r: None if not r["actions"] else r["actions"]),
    ("arabic-rtl-mark", JOHN, "\u200fأين طلبي؟\u200f", lambda r: None if not r["actions"] else r["actions"]),
    ("chinese-no-spaces", JOHN, "我想取消订单", lambda r: None if not r["actions"] else r["actions"]),
    ("emoji-zwj", JOHN, "Where is ORD-10002? 👨\u200d👩\u200d👧 😡",
     lambda r: None if "TRK100000002" in r["response"] else "tracking number missing"),
    ("nfd-accent", JOHN, "Cafe\u0301 re\u0301sume\u0301, where is ORD-10002?",
     lambda r: None if r["intent"] == "order_status" else r["intent"]),
    ("fullwidth-order-id", JOHN, _in_digits("Where is my order \uff2f\uff32\uff24\uff0d10002?", 0xFF10),
     lambda r: None if "TRK100000002" in r["response"] else "order id not understood"),
    ("arabic-indic-card", JOHN, _in_digits("my card 4111 1111 1111 1111 was charged twice", 0x0660),
     lambda r: None if "pii_redacted" in r["flags"] else r["flags"]),
    ("fullwidth-card", JOHN, _in_digits("card 4111\uff0d1111\uff0d1111\uff0d1111", 0xFF10),
     lambda r: None if "pii_redacted" in r["flags"] else r["flags"]),
    ("c0-inside", JOHN, "where is my order\x00 ORD-10002\x07",
     lambda r: None if r["intent"] == "order_status" else r["intent"]),
]  # fmt: skip


STORED_AS_WRITTEN = {"emoji-zwj"}
"""Rows whose stored text must be the message exactly as sent (nothing in it is screened away)."""


async def _stored_customer_text(client: httpx.AsyncClient, session_id: str) -> str | None:
    response = await client.get(f"/api/conversations/{session_id}")
    if response.status_code != 200:
        return None
    texts = [t["text"] for t in response.json()["turns"] if t["role"] == "customer"]
    return texts[0] if texts else None


async def _eventually_stored(client: httpx.AsyncClient, session_id: str) -> str:
    """The customer's turn once stored: turns are written after the answer, asynchronously."""

    async def stored() -> str | None:
        return await _stored_customer_text(client, session_id)

    return await eventually_async(stored, what=f"the customer turn of {session_id} to be stored")


async def _assert_nothing_stored_for(client: httpx.AsyncClient, refused: list[str]) -> None:
    """Storage lags the answer, so "nothing stored" means something only once a message accepted
    after the refusals has been stored: then theirs would have been too."""
    body = {"message": "Where is ORD-10002?", "customer_email": JOHN, "session_id": "s-sentinel"}
    assert (await client.post("/api/chat", json=body)).status_code == 200
    await _eventually_stored(client, "s-sentinel")
    stored = {session: await _stored_customer_text(client, session) for session in refused}
    assert stored == dict.fromkeys(refused), stored


async def test_a_message_with_nothing_to_read_is_refused_naming_it(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path)
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        ws_address = stack.url.replace("http://", "ws://") + "/ws?session_id=ws-invisible"
        async with connect(ws_address) as ws:
            assert json.loads(await ws.recv())["type"] == "connected"
            for param in NOTHING_TO_READ:
                (text,) = param.values
                # json.dumps escapes a lone surrogate as "\ud800", which the server's parser accepts.
                body = json.dumps({"message": text, "customer_email": JOHN, "session_id": f"s-{param.id}"})
                response = await client.post(
                    "/api/chat", content=body, headers={"content-type": "application/json"}
                )
                assert response.status_code == 422, (param.id, response.status_code, response.text)
                assert [f["field"] for f in response.json()["fields"]] == ["message"], param.id

                await ws.send(json.dumps({"type": "chat", "data": {"message": text, "customer_email": JOHN}}))
                frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
                assert frame["type"] == "error", (param.id, frame)
                assert frame["data"]["status"] == 422, (param.id, frame)
                assert [f["field"] for f in frame["data"]["fields"]] == ["message"], (param.id, frame)
            assert await dlq.list_records(stack.mesh.js, stack.mesh.subjects) == []

        # Within MAX_MESSAGE_CHARS as sent, 18 times over it as screened (NFKC spells U+FDFA in 18
        # letters): refused like any message over the limit, not forwarded and stored at 72,000.
        expanding = {"message": "\ufdfa" * 4000, "customer_email": JOHN, "session_id": "s-expanding"}
        response = await client.post("/api/chat", json=expanding)
        assert response.status_code == 413, (response.status_code, response.text[:300])
        assert [f["field"] for f in response.json()["fields"]] == ["message"]
        refused = [f"s-{param.id}" for param in NOTHING_TO_READ] + ["s-expanding", "ws-invisible"]
        await _assert_nothing_stored_for(client, refused)


async def test_every_language_is_answered_stored_as_screened_and_takes_no_unasked_action(
    nats_server: str, tmp_path: Path
) -> None:
    settings = stack_settings(nats_server, tmp_path)
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=60) as client:

        async def one(name: str, email: str, text: str) -> tuple[str, httpx.Response]:
            body = {"message": text, "customer_email": email, "session_id": f"s-{name}"}
            return name, await client.post("/api/chat", json=body)

        answers = dict(await asyncio.gather(*(one(n, e, t) for n, e, t, _ in LANGUAGES)))
        problems = []
        for name, _, text, check in LANGUAGES:
            response = answers[name]
            if response.status_code != 200:
                problems.append((name, response.status_code, response.text))
                continue
            result = response.json()
            if result["response"].strip() == "" or result["flags"].count("error"):
                problems.append((name, "no real answer", result))
            if (problem := check(result)) is not None:
                problems.append((name, problem))
            stored = await _eventually_stored(client, f"s-{name}")
            if stored != screen(text)[0]:
                problems.append((name, "stored", stored, screen(text)[0]))
            if name in STORED_AS_WRITTEN and stored != text:
                problems.append((name, "not stored as written", stored))
        assert not problems, problems
        assert await dlq.list_records(stack.mesh.js, stack.mesh.subjects) == []
