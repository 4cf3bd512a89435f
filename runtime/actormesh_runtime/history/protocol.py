"""The history store's read protocol over NATS request/reply, and the client other processes use.

Nobody but the history service opens the SQLite file; a gateway asks on `Subjects(mesh).history_query`
with a `HistoryQuery` and gets a `HistoryAnswer`. Kept free of aiosqlite so the gateway does not
import the store.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from actormesh_runtime.catalog import Subjects
from actormesh_runtime.envelope import FinalResult


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["conversation", "result", "ping", "claim"]
    session_id: str | None = None
    message_id: str | None = None
    customer_email: str | None = Field(None, description="Restrict to this customer's turns (auth on)")
    limit: int = Field(500, ge=1, le=5000)


class HistoryAnswer(BaseModel):
    ok: bool = True
    error: str | None = None
    turns: list[dict[str, Any]] = Field(default_factory=list)
    """`history.store.Turn` dumps, oldest first."""
    result: FinalResult | None = None
    customer_email: str | None = None
    """The result's customer (`result`), or the session's owner (`claim`)."""


class HistoryUnavailable(Exception):
    """The history service did not answer (not running, or NATS is down)."""


class HistoryClient:
    """Asks the history service; one per process, sharing the process's NATS connection."""

    def __init__(self, nc: Any, subjects: Subjects, *, timeout_s: float = 3.0) -> None:
        self._nc = nc
        self._subject = subjects.history_query
        self._timeout_s = timeout_s

    async def ask(self, query: HistoryQuery) -> HistoryAnswer:
        try:
            reply = await self._nc.request(
                self._subject, query.model_dump_json().encode(), timeout=self._timeout_s
            )
        except Exception as exc:  # no responders, timeout, connection closed: all mean "not now"
            raise HistoryUnavailable(f"history service did not answer: {type(exc).__name__}") from exc
        answer = HistoryAnswer.model_validate_json(reply.data)
        if not answer.ok:
            raise HistoryUnavailable(answer.error or "history service error")
        return answer

    async def conversation(
        self, session_id: str, *, customer_email: str | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        query = HistoryQuery(
            op="conversation", session_id=session_id, customer_email=customer_email, limit=limit
        )
        return (await self.ask(query)).turns

    async def result(self, message_id: str) -> tuple[FinalResult, str] | None:
        """The stored result and its customer's email, or None when the store has no such message."""
        answer = await self.ask(HistoryQuery(op="result", message_id=message_id))
        if answer.result is None or answer.customer_email is None:
            return None
        return answer.result, answer.customer_email

    async def claim(self, session_id: str, customer_email: str) -> str:
        """The session's owner, made `customer_email` when it had none (durable: the history file)."""
        answer = await self.ask(
            HistoryQuery(op="claim", session_id=session_id, customer_email=customer_email)
        )
        if answer.customer_email is None:
            raise HistoryUnavailable("history service returned no session owner")
        return answer.customer_email
