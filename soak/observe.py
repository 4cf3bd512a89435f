"""Watches every result the mesh sends to any gateway replica, to count answers sent twice.

A core-NATS subscription on `<prefix>.reply.*.result` sees each result the response aggregator
publishes, whichever gateway it is meant for. It reconnects after a NATS restart; results sent
while NATS is down reach nobody, so the count is a lower bound of what was sent, and an exact
count of what gateways could have received.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import defaultdict

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from actormesh_runtime.catalog import Subjects


class ResultWatcher:
    def __init__(self, nats_url: str, mesh: str) -> None:
        self.nats_url = nats_url
        self.subjects = Subjects(mesh)
        self.seen: dict[str, list[str]] = defaultdict(list)
        """message id -> fingerprint of each result published for it (response text and actions)."""
        self._nc = NATS()

    async def start(self) -> None:
        async def quiet(*_: object) -> None:
            return None

        await self._nc.connect(
            self.nats_url,
            name="soak-watcher",
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            error_cb=quiet,
            disconnected_cb=quiet,
            reconnected_cb=quiet,
        )
        await self._nc.subscribe(f"{self.subjects.replies('*')}.result", cb=self._on_result)
        await self._nc.flush()

    async def _on_result(self, msg: Msg) -> None:
        try:
            result = json.loads(msg.data)
            message_id = str(result["message_id"])
        except (ValueError, KeyError, TypeError):
            self.seen["<unreadable>"].append(msg.data[:200].decode(errors="replace"))
            return
        facts = json.dumps([result.get("response"), result.get("actions")], sort_keys=True)
        self.seen[message_id].append(hashlib.sha256(facts.encode()).hexdigest()[:16])

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self._nc.close()
