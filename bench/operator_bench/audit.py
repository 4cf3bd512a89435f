"""The API server's audit log as a request counter: the policy that records one user, and its parsing.

The bench runs the operator under its own ServiceAccount, so every request it makes (and nothing else)
lands in the log at level Metadata. Pure: `cluster.py` writes the policy, `scenario.py` reads the file.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


def audit_policy(usernames: Sequence[str]) -> dict[str, Any]:
    """An audit.k8s.io/v1 Policy logging only `usernames`' requests, metadata only, when answered."""
    return {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [{"level": "Metadata", "users": list(usernames)}, {"level": "None"}],
    }


@dataclass(frozen=True)
class ApiCall:
    """One request as the audit log saw it."""

    at: float
    """Epoch seconds when the API server answered (a watch: when it started streaming)."""
    verb: str
    resource: str
    """`deployments`, `actormeshes/status`; a non-resource path (discovery) as the path itself."""
    namespace: str
    code: int

    @property
    def label(self) -> str:
        return f"{self.verb} {self.resource}"


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def parse_event(event: dict[str, Any], username: str) -> ApiCall | None:
    """The call an audit event records, or None (another user, or a stage we do not count).

    A watch is counted once, when it starts (ResponseStarted); everything else when it completes."""
    if (event.get("user") or {}).get("username") != username:
        return None
    verb = str(event.get("verb") or "")
    stage = event.get("stage")
    if stage != ("ResponseStarted" if verb == "watch" else "ResponseComplete"):
        return None
    ref = event.get("objectRef") or {}
    resource = str(ref.get("resource") or "")
    if ref.get("subresource"):
        resource += "/" + str(ref["subresource"])
    if not resource:
        resource = str(event.get("requestURI") or "").split("?", 1)[0]
    return ApiCall(
        at=_epoch(str(event.get("stageTimestamp") or event.get("requestReceivedTimestamp"))),
        verb=verb,
        resource=resource,
        namespace=str(ref.get("namespace") or ""),
        code=int((event.get("responseStatus") or {}).get("code") or 0),
    )


def parse_lines(lines: Iterable[str], username: str) -> list[ApiCall]:
    """Every counted call of `username` in audit log lines (JSON, one event per line)."""
    calls = []
    for line in lines:
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written while we read
        call = parse_event(event, username)
        if call is not None:
            calls.append(call)
    return calls


def between(calls: Iterable[ApiCall], start: float, end: float) -> list[ApiCall]:
    return [c for c in calls if start <= c.at < end]


def by_label(calls: Iterable[ApiCall]) -> dict[str, int]:
    """Counts per `verb resource`, most frequent first."""
    return dict(Counter(c.label for c in calls).most_common())
