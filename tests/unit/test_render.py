"""`actormesh-operator render`: for every sample, exactly the manifests the reconcile's apply step sends
for the built children (the reconcile adds `actormesh.io/secret-hash` to workloads reading Secrets,
which render cannot read: see render.py)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import build_children
from actormesh_operator.main import main as operator_main
from actormesh_operator.main import parse_args as operator_args
from actormesh_operator.reconcile.apply import ApplyOutcome, apply_children
from actormesh_operator.render import main as render_main
from actormesh_operator.settings import OperatorSettings

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "config" / "samples").glob("*.yaml"))


class RecordingKube:
    """Stands in for the API server in the apply step: records each server-side apply body."""

    def __init__(self) -> None:
        self.applied: list[dict[str, Any]] = []

    async def apply(self, resource: Any, body: dict[str, Any], *, field_manager: str) -> dict[str, Any]:
        self.applied.append(body)
        return body


def _applied_by_reconcile(sample: Path, namespace: str, *, keda: bool) -> list[dict[str, Any]]:
    body = yaml.safe_load(sample.read_text())
    body["metadata"].setdefault("namespace", namespace)
    mesh = ActorMesh.from_body(body)
    kube = RecordingKube()
    desired = build_children(mesh, OperatorSettings(), keda_available=keda)
    asyncio.run(
        apply_children(kube, desired, {}, field_manager="actormesh-operator", outcome=ApplyOutcome())  # type: ignore[arg-type]
    )
    return kube.applied


def _render(*argv: str) -> list[dict[str, Any]]:
    out = io.StringIO()
    assert render_main(list(argv), out=out) == 0
    return list(yaml.safe_load_all(out.getvalue()))


@pytest.mark.parametrize("keda", [False, True], ids=["no-keda", "keda"])
@pytest.mark.parametrize("sample", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_render_prints_what_the_reconcile_applies(sample: Path, keda: bool) -> None:
    argv = ["-f", str(sample), "--namespace", "shop", *(["--keda"] if keda else [])]
    rendered = _render(*argv)
    assert rendered == _applied_by_reconcile(sample, "shop", keda=keda)
    assert {o["metadata"]["namespace"] for o in rendered} == {"shop"}


def test_keda_changes_the_output_of_a_queue_lag_sample() -> None:
    production = next(p for p in SAMPLES if p.stem == "production")
    kinds = {o["kind"] for o in _render("-f", str(production), "--keda")}
    assert ("ScaledObject" in kinds) == ("queueLag" in production.read_text())


def test_the_operator_command_dispatches_render(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        operator_main(["render", "-f", str(SAMPLES[0])])
    assert exit_info.value.code == 0
    assert "kind: Deployment" in capsys.readouterr().out


def test_an_invalid_mesh_is_refused_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: actormesh.io/v1alpha1\nkind: ActorMesh\nmetadata: {name: x}\n"
        "spec: {image: i, runtime: {logLevel: LOUD}}\n"
    )
    assert render_main(["-f", str(bad)], out=io.StringIO()) == 1
    assert "spec.runtime.logLevel" in capsys.readouterr().err


def test_render_with_monitoring_includes_the_prometheus_operator_objects(tmp_path: Path) -> None:
    body = {
        "apiVersion": "actormesh.io/v1alpha1",
        "kind": "ActorMesh",
        "metadata": {"name": "watched"},
        "spec": {
            "image": "img:1",
            "monitoring": {"podMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
        },
    }
    path = tmp_path / "mesh.yaml"
    path.write_text(yaml.safe_dump(body))
    kinds = {}
    for flag in ([], ["--monitoring"]):
        out = io.StringIO()
        assert render_main(["-f", str(path), *flag], out) == 0
        kinds[bool(flag)] = {d["kind"] for d in yaml.safe_load_all(out.getvalue())}
    assert {"PodMonitor", "PrometheusRule"} <= kinds[True]
    assert not {"PodMonitor", "PrometheusRule"} & kinds[False]


def test_the_operators_help_names_the_render_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        operator_args(["--help"])
    assert "actormesh-operator render -f" in capsys.readouterr().out
