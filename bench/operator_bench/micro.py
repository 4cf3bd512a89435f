"""CPU of one no-op child event inside the operator, measured in-process (no load from the machine's
other processes counts: `time.process_time`): the watch line parsed, the informer's store updated,
the change classified — the whole path a status-only update of a child takes when it changes
nothing. The object is a real Deployment read from the bench's API server."""

from __future__ import annotations

import copy
import json
import time
from typing import Any, cast

from actormesh_operator.builders.kinds import DEPLOYMENT
from actormesh_operator.reconcile.apply import field_managers
from actormesh_operator.reconcile.children import ChildCache
from actormesh_operator.reconcile.kube import KubeClient
from actormesh_operator.settings import OperatorSettings


def noop_event_cpu_us(live: dict[str, Any], events: int = 2000) -> dict[str, Any]:
    """Microseconds of CPU per status-only event of `live` that changes nothing the operator reads."""
    woken: list[Any] = []
    cache = ChildCache(
        cast(KubeClient, None),
        [DEPLOYMENT],
        namespace=None,
        field_managers=field_managers(OperatorSettings().field_manager),
        on_change=lambda *change: woken.append(change),
    )
    informer = next(iter(cache._informers.values()))
    base = copy.deepcopy(live)
    version = int(base["metadata"]["resourceVersion"])
    informer.put(base)
    lines = []
    for i in range(events):
        obj = copy.deepcopy(base)
        obj["metadata"]["resourceVersion"] = str(version + 1 + i)
        conditions = obj.setdefault("status", {}).setdefault("conditions", [])
        conditions.append({"type": "BenchTouched", "status": "True", "message": f"touch {i}"})
        lines.append(json.dumps({"type": "MODIFIED", "object": obj}))
    started = time.process_time()
    for line in lines:
        event = json.loads(line)  # what KubeClient.watch does with each line
        informer._apply(event["type"], event["object"])
    cpu = time.process_time() - started
    return {
        "events": events,
        "cpu_us_per_event": round(cpu / events * 1e6, 1),
        "object_bytes": len(json.dumps(live)),
        "woken": len(woken),
    }
