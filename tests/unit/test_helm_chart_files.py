"""The Helm chart ships the generated CRD unchanged (`make crds` writes both copies)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_chart_crd_is_the_generated_crd() -> None:
    generated = (ROOT / "crds" / "actormesh.io_actormeshes.yaml").read_text()
    shipped = (ROOT / "charts" / "actormesh-operator" / "crds" / "actormesh.io_actormeshes.yaml").read_text()
    assert shipped == generated, "run `make crds`"
