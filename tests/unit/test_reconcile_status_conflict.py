"""Status writes are guarded by resourceVersion: a 409 re-reads and recomputes, never overwriting a
condition another controller added after our read (our patch carries the whole conditions list)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, cast

import pytest

from actormesh_operator.reconcile.kube import KubeApiError, KubeClient, Resource
from actormesh_operator.reconcile.runner import STATUS_CONFLICT_RETRIES, MeshReconciler
from actormesh_operator.settings import OperatorSettings

FOREIGN = {"type": "example.com/Audited", "status": "True", "reason": "Checked", "message": "other writer"}


def _body(version: str, conditions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"name": "demo", "namespace": "ns", "generation": 2, "resourceVersion": version},
        "spec": {"image": "x"},
        "status": {"conditions": conditions},
    }


class _Kube:
    """Answers 409 `conflicts` times, then accepts; `get` returns the newer object."""

    def __init__(self, fresh: dict[str, Any], conflicts: int) -> None:
        self.fresh, self.conflicts = fresh, conflicts
        self.patches: list[tuple[str | None, dict[str, Any]]] = []

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        return copy.deepcopy(self.fresh)

    async def patch_status(
        self,
        resource: Resource,
        name: str,
        namespace: str | None,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        self.patches.append((resource_version, dict(status)))
        if len(self.patches) <= self.conflicts:
            raise KubeApiError(409, "Conflict", "the object has been modified")
        return {}


async def test_a_conflict_recomputes_from_the_fresh_status_and_keeps_the_other_writer() -> None:
    kube = _Kube(fresh=_body("2", [FOREIGN]), conflicts=1)
    reconciler = MeshReconciler(OperatorSettings(), cast(KubeClient, kube))

    await reconciler._write_invalid(_body("1", []), "spec.image: bad")

    (first_version, _), (second_version, second) = kube.patches
    assert (first_version, second_version) == ("1", "2")
    types = [c["type"] for c in second["conditions"]]
    assert FOREIGN["type"] in types
    assert {"Ready", "Reconciling", "Stalled"} <= set(types)


async def test_endless_conflicts_become_an_ordinary_failure() -> None:
    kube = _Kube(fresh=_body("2", []), conflicts=100)
    reconciler = MeshReconciler(OperatorSettings(), cast(KubeClient, kube))

    with pytest.raises(Exception, match="update actormesh demo status"):
        await reconciler._write_invalid(_body("1", []), "spec.image: bad")
    assert len(kube.patches) == STATUS_CONFLICT_RETRIES + 1
