"""Kubernetes Events on the mesh (Applied, Paused, Resumed, a stall's reason), posted by us.

Not through `kopf.event`: kopf's event queue lives in a context variable set only inside its own
per-object handlers, so an Event from a reconcile started by the resync loop or a Secret watch was
silently dropped (found as a 1-in-4 missing `Resumed` Event). Posting is best effort: a failure is
logged and never fails the reconcile.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from actormesh_operator.reconcile.kube import KubeClient, Resource

logger = logging.getLogger(__name__)

EVENTS = Resource("v1", "Event", "events")
MAX_MESSAGE = 1024
"""The API server rejects longer Event messages."""


def event_body(
    obj: Mapping[str, Any], kind: str, reason: str, message: str, *, component: str, now: datetime
) -> dict[str, Any]:
    """A core/v1 Event about `obj` (pure, unit-tested)."""
    meta = obj.get("metadata") or {}
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name', 'actormesh')}.", "namespace": meta.get("namespace")},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": kind,
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": socket.gethostname(),
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


async def post_event(
    kube: KubeClient, obj: Mapping[str, Any], kind: str, reason: str, message: str, *, component: str
) -> None:
    body = event_body(obj, kind, reason, message, component=component, now=datetime.now(UTC))
    namespace = (obj.get("metadata") or {}).get("namespace")
    try:
        await kube.request("POST", EVENTS.path(namespace), body=body)
    except Exception as exc:  # Events help, but must never fail a reconcile
        logger.warning("could not post the %s Event %s: %s", kind, reason, exc)
