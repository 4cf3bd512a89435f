"""kube.py without a server: kubeconfig parsing, in-cluster credentials, API paths, error parsing."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from actormesh_operator.reconcile.kube import (
    KubeConfigError,
    Resource,
    _lines,
    api_error,
    load_incluster,
    load_kubeconfig,
)

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _write(path: Path, config: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def test_kubeconfig_with_inline_data_and_token(tmp_path: Path) -> None:
    config = {
        "current-context": "b",
        "contexts": [
            {"name": "a", "context": {"cluster": "c1", "user": "u1"}},
            {"name": "b", "context": {"cluster": "c2", "user": "u2", "namespace": "team"}},
        ],
        "clusters": [
            {"name": "c1", "cluster": {"server": "https://wrong:1"}},
            {
                "name": "c2",
                "cluster": {
                    "server": "https://127.0.0.1:6443",
                    "certificate-authority-data": base64.b64encode(PEM.encode()).decode(),
                },
            },
        ],
        "users": [{"name": "u1", "user": {}}, {"name": "u2", "user": {"token": "s3cr3t"}}],
    }
    creds = load_kubeconfig(_write(tmp_path / "kc", config))
    assert creds.server == "https://127.0.0.1:6443"
    assert creds.ca_data == PEM
    assert creds.current_token() == "s3cr3t"
    assert creds.namespace == "team"


def test_kubeconfig_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    config = {
        "current-context": "x",
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [
            {"name": "c", "cluster": {"server": "https://k:6443", "certificate-authority": "pki/ca.crt"}}
        ],
        "users": [
            {"name": "u", "user": {"client-certificate": "pki/admin.crt", "client-key": "/abs/admin.key"}}
        ],
    }
    creds = load_kubeconfig(_write(tmp_path / "kc", config))
    assert creds.ca_path == str(tmp_path / "pki" / "ca.crt")
    assert creds.cert_path == str(tmp_path / "pki" / "admin.crt")
    assert creds.key_path == "/abs/admin.key"


def test_kubeconfig_errors_name_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="current-context"):
        load_kubeconfig(_write(tmp_path / "kc", {"contexts": []}))
    config = {
        "current-context": "x",
        "contexts": [{"name": "x", "context": {"cluster": "nope", "user": "u"}}],
    }
    with pytest.raises(KubeConfigError, match="cluster named 'nope'"):
        load_kubeconfig(_write(tmp_path / "kc2", config))


def test_in_cluster_token_is_read_by_path(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("first\n")
    (tmp_path / "namespace").write_text("ops")
    creds = load_incluster(tmp_path)
    assert (creds.server, creds.namespace, creds.ca_path) == ("https://kubernetes.default.svc", "ops", None)
    assert creds.current_token() == "first"
    (tmp_path / "token").write_text("rotated")
    assert creds.current_token() == "rotated"


def test_not_in_cluster(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="not in a cluster"):
        load_incluster(tmp_path)


@pytest.mark.parametrize(
    ("resource", "args", "path"),
    [
        pytest.param(
            Resource("v1", "ConfigMap", "configmaps"),
            ("ns", "cfg"),
            "/api/v1/namespaces/ns/configmaps/cfg",
            id="core",
        ),
        pytest.param(
            Resource("apps/v1", "Deployment", "deployments"),
            ("ns", None),
            "/apis/apps/v1/namespaces/ns/deployments",
            id="group-collection",
        ),
        pytest.param(
            Resource("actormesh.io/v1alpha1", "ActorMesh", "actormeshes"),
            (None, None),
            "/apis/actormesh.io/v1alpha1/actormeshes",
            id="all-namespaces",
        ),
    ],
)
def test_paths(resource: Resource, args: tuple[str | None, str | None], path: str) -> None:
    assert resource.path(*args) == path


def test_status_subresource_path() -> None:
    mesh = Resource("actormesh.io/v1alpha1", "ActorMesh", "actormeshes")
    assert (
        mesh.path("ns", "demo", "status")
        == "/apis/actormesh.io/v1alpha1/namespaces/ns/actormeshes/demo/status"
    )


def test_api_error_keeps_the_status_reason_and_retry_after() -> None:
    body = {"kind": "Status", "reason": "TooManyRequests", "message": "storage is (re)initializing"}
    error = api_error(429, "Too Many Requests", json.dumps(body).encode(), {"Retry-After": "2"})
    assert (error.status, error.reason, error.retry_after) == (429, "TooManyRequests", 2.0)
    assert str(error) == "429 TooManyRequests: storage is (re)initializing"


def test_unreadable_kubeconfig_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="cannot read kubeconfig"):
        load_kubeconfig(tmp_path / "absent")


class _Chunks:
    """A stand-in for aiohttp's StreamReader: the chunks as the network delivered them."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def iter_any(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


async def test_watch_lines_are_split_across_chunks_and_may_exceed_readline_limits() -> None:
    big = b'{"type":"ADDED","object":{"data":"' + b"x" * 300_000 + b'"}}'
    chunks = [b'{"a":1}\n{"b"', b":2}\n\n", big[:100_000], big[100_000:], b"\n", b'{"c":3}']
    lines = [line async for line in _lines(cast(Any, _Chunks(chunks)))]
    assert lines == [b'{"a":1}', b'{"b":2}', big, b'{"c":3}']
