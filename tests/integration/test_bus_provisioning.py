"""Connecting and stream provisioning (docs/bus.md). NATS_URL may name several servers, comma-separated.
Provisioning: every process creates or updates the mesh's streams when it starts —
idempotent, safe when several start at once (a rolling upgrade may run two configurations side by side),
so start-up order does not matter."""

from __future__ import annotations

import asyncio

import pytest
from nats.js.api import RetentionPolicy

from actormesh_runtime.bus.connection import connect, open_bus, work_stream_config
from actormesh_runtime.catalog import Subjects
from tests.support.bus_actors import fast_settings
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


async def test_processes_starting_at_once_share_one_set_of_streams(nats_server: str) -> None:
    settings = fast_settings(nats_server)
    newer = settings.model_copy(update={"duplicate_window_s": 90.0})  # the next release, mid-rollout
    subjects = Subjects(settings.mesh_name)

    connections = await asyncio.gather(*(open_bus(s) for s in [settings] * 5 + [newer] * 2))
    try:
        js = connections[0].jetstream()
        names = {info.config.name for info in await js.streams_info()}
        assert {subjects.stream, subjects.dlq_stream, subjects.escalations_stream} <= names
        work = await js.stream_info(subjects.stream)
        assert work.config.duplicate_window in (60.0, 90.0)
        assert work.config.subjects == list(subjects.stream_subjects)
    finally:
        await asyncio.gather(*(nc.close() for nc in connections))


async def test_a_restart_with_new_settings_updates_the_existing_streams(nats_server: str) -> None:
    settings = fast_settings(nats_server, duplicate_window_s=60.0, nats_stream_replicas=1)
    first = await open_bus(settings)
    try:
        js = first.jetstream()
        await js.publish(Subjects(settings.mesh_name).history_events, b"kept")
        second = await open_bus(settings.model_copy(update={"duplicate_window_s": 45.0}))
        await second.close()

        work = await js.stream_info(Subjects(settings.mesh_name).stream)
        assert work.config.duplicate_window == 45.0, "the running stream took the new setting"
        assert work.state.messages == 1, "updated in place: nothing stored was lost"
    finally:
        await first.close()


async def test_a_stream_that_cannot_take_the_new_settings_is_kept_and_the_process_starts(
    nats_server: str,
) -> None:
    settings = fast_settings(nats_server)
    wanted = work_stream_config(Subjects(settings.mesh_name), settings)
    nc = await open_bus(settings.model_copy(update={"mesh_name": f"{settings.mesh_name}-x"}))
    try:
        js = nc.jetstream()
        # Someone made the stream by hand with a retention JetStream cannot change afterwards.
        await js.add_stream(wanted.evolve(retention=RetentionPolicy.LIMITS))

        await (await open_bus(settings)).close()

        kept = await js.stream_info(wanted.name or "")
        assert kept.config.retention == RetentionPolicy.LIMITS
    finally:
        await nc.close()


async def test_a_comma_separated_nats_url_names_several_servers(nats_server: str) -> None:
    down = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    nc = await connect(fast_settings(f" {down} , {nats_server},"))
    try:
        assert nc.is_connected
        assert {f"nats://{s.netloc}" for s in nc.servers} >= {down, nats_server}
    finally:
        await nc.close()
