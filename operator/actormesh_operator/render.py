"""`actormesh-operator render -f mesh.yaml`: print the children the operator would apply, with no cluster.

For reviews, GitOps diffs and debugging. The manifests are exactly what the reconcile sends with
server-side apply (`build_children`, then `with_hash` as in `reconcile/apply.py`) for the same
`OperatorSettings` (so the same `ACTORMESH_OPERATOR_*` environment), with two differences a cluster
would supply: the ownerReference's `uid` is the one in the file (usually empty), and no pod template
carries `actormesh.io/secret-hash` (there are no Secrets to read).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from actormesh_operator.api.schema import API_VERSION, KIND
from actormesh_operator.api.spec import ActorMesh, InvalidSpec
from actormesh_operator.builders import build_children
from actormesh_operator.builders.kinds import MONITORING_KINDS
from actormesh_operator.reconcile.diff import with_hash
from actormesh_operator.settings import OperatorSettings


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="actormesh-operator render", description=__doc__.splitlines()[0])
    parser.add_argument("-f", "--filename", required=True, help="ActorMesh YAML (`-` for stdin)")
    parser.add_argument("--keda", action="store_true", help="render as if KEDA were installed")
    parser.add_argument(
        "--monitoring",
        action="store_true",
        help="render as if the Prometheus Operator CRDs were installed (spec.monitoring's objects)",
    )
    parser.add_argument(
        "--gateway-api",
        action="store_true",
        help="render as if the Gateway API CRDs were installed (spec.gateway.httpRoute's HTTPRoute)",
    )
    parser.add_argument("--namespace", "-n", help="namespace of meshes that name none (default: default)")
    return parser.parse_args(argv)


def meshes_in(documents: Iterable[Any], namespace: str | None) -> list[ActorMesh]:
    """Every ActorMesh document (others are skipped); `namespace` fills in a missing metadata.namespace."""
    meshes = []
    for doc in documents:
        if not isinstance(doc, dict) or doc.get("kind") != KIND or doc.get("apiVersion") != API_VERSION:
            continue
        meta = dict(doc.get("metadata") or {})
        if namespace and not meta.get("namespace"):
            meta["namespace"] = namespace
        meshes.append(ActorMesh.from_body({**doc, "metadata": meta}))
    return meshes


def rendered_children(
    mesh: ActorMesh,
    settings: OperatorSettings,
    *,
    keda: bool,
    monitoring: bool = False,
    gateway_api: bool = False,
) -> list[dict[str, Any]]:
    """The manifests the reconcile would apply for `mesh`, in its order."""
    served = frozenset(kind.plural for kind in MONITORING_KINDS) if monitoring else frozenset()
    built = build_children(
        mesh, settings, keda_available=keda, monitoring_available=served, gateway_api_available=gateway_api
    )
    return [with_hash(m) for m in built]


def render(
    text: str,
    settings: OperatorSettings,
    *,
    keda: bool,
    namespace: str | None,
    monitoring: bool = False,
    gateway_api: bool = False,
) -> str:
    meshes = meshes_in(yaml.safe_load_all(text), namespace)
    if not meshes:
        raise InvalidSpec([f"no {API_VERSION} {KIND} in the input"])
    docs = [
        child
        for mesh in meshes
        for child in rendered_children(
            mesh, settings, keda=keda, monitoring=monitoring, gateway_api=gateway_api
        )
    ]
    return yaml.safe_dump_all(docs, sort_keys=False, width=120)


def main(argv: Sequence[str], out: TextIO | None = None) -> int:
    args = parse_args(argv)
    out = out or sys.stdout
    text = sys.stdin.read() if args.filename == "-" else Path(args.filename).read_text()
    try:
        settings = OperatorSettings()
        out.write(
            render(
                text,
                settings,
                keda=args.keda,
                namespace=args.namespace,
                monitoring=args.monitoring,
                gateway_api=args.gateway_api,
            )
        )
    except InvalidSpec as exc:
        print(f"actormesh-operator render: {exc}", file=sys.stderr)
        return 1
    return 0
