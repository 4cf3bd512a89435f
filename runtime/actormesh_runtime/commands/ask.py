"""`actormesh ask --email E "text"`: one message through the real bus, the result printed.

Without `--nats-url` it starts a whole local mesh first (embedded nats-server in a temporary
directory, mock APIs, all nine actors) and stops it afterwards; with `--nats-url` it only submits
to the mesh running there. The text is screened (card numbers, SSNs, prompt injection) before it
goes anywhere. `--json` prints exactly the FinalResult JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from actormesh_runtime.ids import random_hex

if TYPE_CHECKING:
    from actormesh_runtime.envelope import FinalResult
    from actormesh_runtime.settings import RuntimeSettings

HELP = "Send one message through a (local or running) mesh and print the result."
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Ctrl-C (SIGINT) is asyncio.run's own: it cancels the command as these do."""
T = TypeVar("T")


class Stopped(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


async def stoppable(main: Coroutine[Any, Any, T]) -> T:
    """`main`, cancelled by SIGTERM or SIGHUP (then `Stopped`).

    Their default action ends the process on the spot, and the embedded nats-server (in a session of
    its own, so no terminal signal reaches it) would run on with its temporary directory. A cancel
    unwinds the local mesh like any error does. One cancel only: a second would cut that short.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    received: list[int] = []

    def stop(signum: int) -> None:
        if not received:
            task.cancel()
        received.append(signum)

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop, signum)
    try:
        return await main
    except BaseException:
        if received:  # whatever the cancel turned into on its way out (nats-py may rename it)
            raise Stopped(received[0]) from None
        raise


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from actormesh_runtime.commands.options import add_bus_options

    parser.add_argument("message", help="the customer's message")
    parser.add_argument("--email", required=True, help="customer email, e.g. john.doe@example.com")
    parser.add_argument("--json", action="store_true", help="print exactly the result JSON")
    add_bus_options(parser, nats_help="submit to the mesh on this NATS server instead of starting one")
    parser.add_argument("--session", help="session id (default: a new one)")
    parser.add_argument(
        "--timeout", type=float, help="seconds to wait for the reply (default: REQUEST_TIMEOUT_S)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show the mesh's logs")


async def ask(
    settings: RuntimeSettings,
    email: str,
    text: str,
    *,
    external_nats: bool,
    session_id: str | None = None,
    timeout_s: float | None = None,
) -> FinalResult:
    """Screen `text`, run it through the mesh (started here unless `external_nats`), return the result."""
    from actormesh_runtime.bus.connection import open_bus, reach_nats
    from actormesh_runtime.bus.request import reply_to, request_result
    from actormesh_runtime.catalog import Subjects
    from actormesh_runtime.envelope import Envelope
    from actormesh_runtime.local.mesh import LocalMesh
    from actormesh_runtime.observability import tracing
    from actormesh_runtime.screening import screen

    redacted, screening = screen(text)
    subjects = Subjects(settings.mesh_name)
    wait = timeout_s or settings.request_timeout_s

    def envelope(trace: tracing.Span) -> Envelope:
        # Built only once the mesh is ready: its created_at starts processing_ms and the deadline,
        # which must not include the seconds a local mesh takes to start.
        return Envelope.start(
            session_id=session_id or f"sess-{random_hex(12)}",
            customer_email=email,
            message=redacted,
            screening=screening,
            budget_s=wait,
            reply=reply_to(subjects),
            traceparent=trace.context.traceparent,
        )

    if external_nats:
        nc = await reach_nats(settings, name="actormesh-ask")
        try:
            await open_bus(settings, nc=nc)
            with tracing.span("actormesh ask", None, kind="client") as trace:
                return await request_result(nc, subjects, envelope(trace), timeout_s=wait)
        finally:
            await nc.close()
    async with LocalMesh(settings) as mesh:
        assert mesh.nc is not None
        with tracing.span("actormesh ask", None, kind="client") as trace:
            return await request_result(mesh.nc, subjects, envelope(trace), timeout_s=wait)


def render(result: FinalResult) -> str:
    """The result for a human: the reply first, then what the mesh understood and did."""
    lines = [result.response, ""]
    if result.intent is not None:
        confidence = result.intent_confidence or 0.0
        lines.append(f"  intent     {result.intent.value} ({confidence:.2f}, {result.method.intent})")
    if result.sentiment is not None:
        urgency = result.urgency.value if result.urgency else "-"
        lines.append(
            f"  sentiment  {result.sentiment.label.value} ({result.sentiment.score:+.2f}), urgency {urgency}"
        )
    if result.escalated:
        lines.append(f"  escalated  yes, reference {result.reference_id}")
    for action in result.actions:
        target = f" {action.order_id}" if action.order_id else ""
        lines.append(f"  action     {action.type.value}{target}: {action.status.value} - {action.detail}")
    if result.flags:
        lines.append(f"  flags      {', '.join(result.flags)}")
    lines.append(f"  response   {result.method.response}")
    hops = " > ".join(f"{t.actor.value} {t.ms:.1f}ms" + (f" (x{t.attempt})" if t.attempt > 1 else "")
                      for t in result.trace)  # fmt: skip
    lines.append(f"  trace      {hops}")
    lines.append(f"  total      {result.processing_ms:.0f} ms, message {result.message_id}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from actormesh_runtime.bus.connection import NatsUnreachable
    from actormesh_runtime.commands.options import BUS_OPTIONS, settings_from
    from actormesh_runtime.observability.logging import configure_logging
    from actormesh_runtime.observability.tracing import configure_tracing

    settings = settings_from(args, BUS_OPTIONS)
    configure_logging(settings, level=None if args.verbose else "WARNING")
    configure_tracing(settings, service="ask")
    try:
        result = asyncio.run(
            stoppable(ask(settings, args.email, args.message, external_nats=bool(args.nats_url),
                          session_id=args.session, timeout_s=args.timeout))
        )  # fmt: skip
    except Stopped as exc:
        print(f"actormesh ask: stopped by {exc}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("actormesh ask: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except TimeoutError:
        print("error: no reply within the timeout (the conversation may still complete)", file=sys.stderr)
        return 1
    except NatsUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.model_dump_json() if args.json else render(result))
    return 0
