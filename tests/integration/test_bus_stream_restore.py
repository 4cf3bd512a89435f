"""The two ways a stream is put back as declared share one create-or-update
(`bus.connection.create_or_update_stream`) but not its rule for updating (docs/bus.md): at start-up
(`ensure_streams`) every field of the declared config is applied, a new description included; while
running (`bus.reconcile.restore_stream`) only a drift of the fields that change delivery is put back,
and a drift the server refuses to undo is left as it is. A real nats-server."""

from __future__ import annotations

import pytest
from nats.js.api import RetentionPolicy, StreamConfig

from actormesh_runtime.bus.connection import connect, ensure_streams, work_stream_config
from actormesh_runtime.bus.reconcile import restore_stream
from actormesh_runtime.catalog import Subjects
from tests.support.bus_actors import fast_settings

pytestmark = pytest.mark.integration


async def test_restore_creates_a_gone_stream_puts_back_drift_and_leaves_the_rest(nats_server: str) -> None:
    settings = fast_settings(nats_server)
    subjects = Subjects(settings.mesh_name)
    declared = work_stream_config(subjects, settings)
    name = declared.name or ""
    nc = await connect(settings)
    try:
        js = nc.jetstream()
        assert await restore_stream(js, declared) == "created"
        assert await restore_stream(js, declared) is None

        await js.update_stream(declared.evolve(max_msgs=1))  # `nats stream edit`
        assert await restore_stream(js, declared) == "updated"
        assert (await js.stream_info(name)).config.max_msgs == -1

        # A field that changes no delivery rule is not drift: left as edited while running.
        await js.update_stream(declared.evolve(description="edited by hand"))
        assert await restore_stream(js, declared) is None
        assert (await js.stream_info(name)).config.description == "edited by hand"
        # ...and applied at the next start-up, which updates every field.
        await ensure_streams(js, subjects, settings)
        assert (await js.stream_info(name)).config.description == declared.description
    finally:
        await nc.close()


async def test_restore_leaves_a_drift_the_server_refuses_to_undo(nats_server: str) -> None:
    settings = fast_settings(nats_server)
    declared = work_stream_config(Subjects(settings.mesh_name), settings)
    name = declared.name or ""
    nc = await connect(settings)
    try:
        js = nc.jetstream()
        # Made by hand with a retention JetStream cannot change afterwards.
        by_hand: StreamConfig = declared.evolve(retention=RetentionPolicy.LIMITS)
        await js.add_stream(by_hand)

        assert await restore_stream(js, declared) is None
        assert (await js.stream_info(name)).config.retention == RetentionPolicy.LIMITS
    finally:
        await nc.close()
