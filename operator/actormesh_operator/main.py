"""`actormesh-operator`: run the ActorMesh operator (kopf) cluster-wide or in one namespace.

`actormesh-operator render -f mesh.yaml` prints the children it would apply instead (`render.py`).

The console entry point declared in pyproject.toml. Settings come from `OperatorSettings` (environment
`ACTORMESH_OPERATOR_*`); `--namespace` and `--kubeconfig` override them. `run()` is also what the
integration tests call, in-process, with a stop flag.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Any

import kopf

from actormesh_operator import render
from actormesh_operator.api.schema import PLURAL
from actormesh_operator.builders.kinds import HTTP_ROUTE, SCALED_OBJECT
from actormesh_operator.reconcile import metrics
from actormesh_operator.reconcile.handlers import build_registry
from actormesh_operator.reconcile.kube import KubeClient, KubeConfigError, KubeCredentials, load_credentials
from actormesh_operator.reconcile.runner import MESHES
from actormesh_operator.settings import OperatorSettings

logger = logging.getLogger("actormesh_operator")


class CrdMissingError(RuntimeError):
    """The ActorMesh CRD is not installed; with CRD scanning off, kopf would silently watch nothing."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="actormesh-operator",
        description=__doc__.splitlines()[0],
        epilog="`actormesh-operator render -f mesh.yaml` prints the children the operator would apply "
        "for that ActorMesh, without a cluster (`render --help`).",
    )
    parser.add_argument("--namespace", "-n", help="watch only this namespace (namespaced install)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, else ~/.kube/config)")
    parser.add_argument(
        "--log-format", choices=["json", "text"], help="overrides ACTORMESH_OPERATOR_LOG_FORMAT"
    )
    return parser.parse_args(argv)


def configure_logging(settings: OperatorSettings) -> None:
    """JSON lines (with the object reference under `k8s`) in containers, readable text on a terminal."""
    log_format = kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(log_format=log_format, log_refkey="k8s")
    level = logging.getLevelName(settings.log_level.upper())
    logging.getLogger().setLevel(level)
    # kopf logs every watch-event handler call ("Handler 'child-deployments' succeeded") at INFO; our
    # own lines (applied, pruned, failed) say what matters. Its warnings and errors still show.
    if level == logging.INFO:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)


async def discover(creds: KubeCredentials) -> tuple[bool, bool]:
    """Fail fast without the ActorMesh CRD; return whether KEDA's ScaledObjects and the Gateway API's
    HTTPRoutes are served (their informers are set up once, at start-up: watched only if served now)."""
    async with KubeClient(creds) as kube:
        if not await kube.served(MESHES.api_version, PLURAL):
            raise CrdMissingError(
                f"{PLURAL}.{MESHES.group} is not served by {creds.server}: install the CRD first "
                "(kubectl apply -k config/default installs CRD, RBAC and operator together)"
            )
        keda = await kube.served(SCALED_OBJECT.api_version, SCALED_OBJECT.plural)
        return keda, await kube.served(HTTP_ROUTE.api_version, HTTP_ROUTE.plural)


async def run(
    settings: OperatorSettings,
    creds: KubeCredentials,
    *,
    stop_flag: Any = None,
    ready_flag: Any = None,
    listen_host: str = "0.0.0.0",
) -> None:
    """Run until `stop_flag` is set (or a signal arrives when on the main thread).

    The liveness endpoint listens on all interfaces by default (the kubelet probes the pod IP)."""
    keda, gateway_api = await discover(creds)
    namespace = settings.namespace
    liveness = f"http://{listen_host}:{settings.health_port}/healthz" if settings.health_port else None
    await kopf.operator(
        registry=build_registry(settings, creds, keda_available=keda, gateway_api_available=gateway_api),
        standalone=True,
        clusterwide=namespace is None,
        namespaces=[namespace] if namespace else [],
        liveness_endpoint=liveness,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )


def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["render"]:  # `actormesh-operator render -f mesh.yaml`: no cluster, no kopf
        sys.exit(render.main(argv[1:]))
    args = parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.namespace:
        overrides["namespace"] = args.namespace
    if args.log_format:
        overrides["log_format"] = args.log_format
    if args.kubeconfig:
        overrides["kubeconfig"] = args.kubeconfig
    settings = OperatorSettings(**overrides)
    configure_logging(settings)
    try:
        creds = load_credentials(settings.kubeconfig)
        metrics.serve(settings.metrics_port)
        asyncio.run(run(settings, creds))
    except (KubeConfigError, CrdMissingError) as exc:
        logger.error("cannot start: %s", exc)
        sys.exit(1)


if __name__ == "__main__":
    main()
