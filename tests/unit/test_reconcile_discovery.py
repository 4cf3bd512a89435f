"""Discovery of optional kinds: asked once at least (so a mesh that switched a kind off still lists and
prunes its objects), then again only by meshes that use the kind, at most once per interval."""

from __future__ import annotations

from typing import cast

from actormesh_operator.builders.kinds import HTTP_ROUTE, MONITORING_KINDS, SCALED_OBJECT
from actormesh_operator.reconcile.kube import KubeClient
from actormesh_operator.reconcile.observe import KindDetector, ServedKindsDetector


class FakeDiscovery:
    def __init__(self, served: dict[str, set[str]]) -> None:
        self.served = served
        self.asked: list[str] = []

    async def served_plurals(self, api_version: str) -> set[str]:
        self.asked.append(api_version)
        return set(self.served.get(api_version, set()))


def _kube(fake: FakeDiscovery) -> KubeClient:
    return cast(KubeClient, fake)


async def test_never_asked_is_asked_even_without_recheck() -> None:
    fake = FakeDiscovery({"monitoring.coreos.com/v1": {"servicemonitors", "prometheusrules"}})
    detector = ServedKindsDetector(MONITORING_KINDS)
    assert await detector.served(_kube(fake), recheck=False) == {"servicemonitors", "prometheusrules"}
    assert await detector.served(_kube(fake), recheck=False) == {"servicemonitors", "prometheusrules"}
    assert fake.asked == ["monitoring.coreos.com/v1"]


async def test_recheck_after_the_interval_only_when_asked_to() -> None:
    fake = FakeDiscovery({})
    detector = KindDetector(SCALED_OBJECT, recheck_s=0.0)
    assert not await detector.available(_kube(fake))
    fake.served["keda.sh/v1alpha1"] = {"scaledobjects"}
    assert not await detector.available(_kube(fake), recheck=False), "the last answer, no request"
    assert await detector.available(_kube(fake))
    assert fake.asked == ["keda.sh/v1alpha1", "keda.sh/v1alpha1"]


async def test_a_start_up_answer_counts_as_asked() -> None:
    fake = FakeDiscovery({"gateway.networking.k8s.io/v1": {"httproutes"}})
    assert not await KindDetector(HTTP_ROUTE, initial=False).available(_kube(fake))
    assert await KindDetector(HTTP_ROUTE, initial=True).available(_kube(fake))
    assert fake.asked == []
