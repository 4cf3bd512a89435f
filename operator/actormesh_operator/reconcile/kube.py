"""A thin async Kubernetes client over aiohttp: credentials, server-side apply, get/list/delete, status.

Used by `apply.py` and `observe.py` (child objects), `runner.py` (the mesh, status patches),
`state.py` (resync lists), `handlers.py` (kopf's login) and the integration tests. It knows nothing
about ActorMesh: callers pass a `Resource` (where an object lives in the API) and plain manifest
dicts. Errors from the API server become `KubeApiError`; network errors stay aiohttp's own (or
`TimeoutError`); `reconcile/errors.py` decides which of them are worth a retry.

Credentials come from a kubeconfig (client certificates, bearer token, CA, by path or inline data) or
from the in-cluster service account, whose token is re-read every minute because the kubelet rotates
it.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
IN_CLUSTER_SERVER = "https://kubernetes.default.svc"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API: `apps/v1` + `deployments`, namespaced or not."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/api/{self.api_version}" if not self.group else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


class KubeApiError(Exception):
    """The API server answered with a non-2xx status (its `Status` reason and message kept)."""

    def __init__(self, status: int, reason: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


class KubeConfigError(Exception):
    """No usable credentials: neither a kubeconfig nor an in-cluster service account."""


@dataclass(frozen=True)
class KubeCredentials:
    """Everything needed to reach one API server. PEM data is kept decoded (text)."""

    server: str
    ca_path: str | None = None
    ca_data: str | None = None
    cert_path: str | None = None
    cert_data: str | None = None
    key_path: str | None = None
    key_data: str | None = None
    token: str | None = None
    token_path: str | None = None
    insecure: bool = False
    namespace: str | None = None

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_path, cadata=self.ca_data)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        with _cert_files(self) as pair:
            if pair is not None:
                context.load_cert_chain(certfile=pair[0], keyfile=pair[1])
        return context

    def current_token(self) -> str | None:
        if self.token_path:
            return Path(self.token_path).read_text(encoding="utf-8").strip() or None
        return self.token


@contextlib.contextmanager
def _cert_files(creds: KubeCredentials) -> Generator[tuple[str, str] | None, None, None]:
    # Python's ssl loads client certificates only from files; inline data lives on disk only briefly.
    if creds.cert_path and creds.key_path:
        yield creds.cert_path, creds.key_path
        return
    if not (creds.cert_data and creds.key_data):
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="actormesh-kube-") as tmp:
        cert, key = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
        cert.write_text(creds.cert_data, encoding="ascii")
        key.touch(mode=0o600)
        key.write_text(creds.key_data, encoding="ascii")
        yield str(cert), str(key)


def _pem(data: str | None) -> str | None:
    if data is None:
        return None
    return data if data.startswith("-----BEGIN ") else base64.b64decode(data).decode("ascii")


def _relative(path: str | None, base: Path) -> str | None:
    # kubeconfig paths are relative to the kubeconfig file, not to the working directory.
    if path is None:
        return None
    return str((base / os.path.expanduser(path)).resolve())


def load_kubeconfig(path: str | os.PathLike[str], context: str | None = None) -> KubeCredentials:
    """Credentials of `context` (default: current-context) in one kubeconfig file."""
    file = Path(path).expanduser()
    try:
        config = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise KubeConfigError(f"cannot read kubeconfig {file}: {exc}") from exc
    name = context or config.get("current-context")
    if not name:
        raise KubeConfigError(f"{file}: no current-context")
    ctx = _named(config, "contexts", name, "context")
    cluster = _named(config, "clusters", ctx["cluster"], "cluster")
    user = _named(config, "users", ctx["user"], "user") if ctx.get("user") else {}
    base = file.parent
    return KubeCredentials(
        server=cluster["server"],
        ca_path=_relative(cluster.get("certificate-authority"), base),
        ca_data=_pem(cluster.get("certificate-authority-data")),
        cert_path=_relative(user.get("client-certificate"), base),
        cert_data=_pem(user.get("client-certificate-data")),
        key_path=_relative(user.get("client-key"), base),
        key_data=_pem(user.get("client-key-data")),
        token=user.get("token"),
        token_path=_relative(user.get("tokenFile"), base),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        namespace=ctx.get("namespace"),
    )


def _named(config: Mapping[str, Any], section: str, name: str, field: str) -> dict[str, Any]:
    for item in config.get(section) or []:
        if item.get("name") == name:
            return dict(item.get(field) or {})
    raise KubeConfigError(f"kubeconfig has no {section[:-1]} named {name!r}")


def load_incluster(directory: Path = SERVICE_ACCOUNT_DIR) -> KubeCredentials:
    """The pod's service account: CA and namespace from the mount; the token is read by path."""
    token = directory / "token"
    if not token.exists():
        raise KubeConfigError(f"not in a cluster: {token} does not exist")
    ca = directory / "ca.crt"
    namespace = directory / "namespace"
    return KubeCredentials(
        server=IN_CLUSTER_SERVER,
        ca_path=str(ca) if ca.exists() else None,
        token_path=str(token),
        namespace=namespace.read_text(encoding="utf-8").strip() if namespace.exists() else None,
    )


def load_credentials(kubeconfig: str | None = None) -> KubeCredentials:
    """An explicit kubeconfig wins; else the in-cluster service account; else ~/.kube/config."""
    if kubeconfig:
        return load_kubeconfig(kubeconfig)
    if (SERVICE_ACCOUNT_DIR / "token").exists():
        return load_incluster()
    default = Path("~/.kube/config").expanduser()
    if default.exists():
        return load_kubeconfig(default)
    raise KubeConfigError("no kubeconfig given, no in-cluster service account, no ~/.kube/config")


class _Token:
    """Bearer token; a projected service-account token is re-read once a minute (the kubelet rotates it)."""

    REREAD_S = 60.0

    def __init__(self, creds: KubeCredentials) -> None:
        self._creds = creds
        self._token: str | None = None
        self._read_at = -self.REREAD_S

    def header(self) -> dict[str, str]:
        now = time.monotonic()
        if now - self._read_at >= self.REREAD_S:
            self._token, self._read_at = self._creds.current_token(), now
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}


class KubeClient:
    """HTTP/1.1 connection pools to the API server (aiohttp). Use as `async with KubeClient(creds) as kube`.

    aiohttp rather than httpx: the operator's CPU per mesh created is mostly its requests and their
    responses, and httpx spent several times aiohttp's CPU per request (measured for the runtime's
    commerce client, and again here: docs/benchmarks.md); kopf already depends on aiohttp."""

    def __init__(self, creds: KubeCredentials, *, timeout: float = 30.0) -> None:
        self.creds = creds
        self._ssl = creds.ssl_context()
        self._token = _Token(creds)
        self._server = creds.server.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._headers = {"Accept": "application/json", "User-Agent": "actormesh-operator"}
        # Sessions need a running event loop: made on first use.
        self._http: aiohttp.ClientSession | None = None
        self._streams: aiohttp.ClientSession | None = None

    def _session(self, *, streams: bool) -> aiohttp.ClientSession:
        # Watches hold their connection for minutes: on the request pool, 100 of them (two Secrets each
        # for 50 meshes) took every connection and every other request timed out waiting for one. They
        # get their own pool without a connection limit (limit=0).
        if streams:
            if self._streams is None:
                self._streams = self._new_session(limit=0)
            return self._streams
        if self._http is None:
            self._http = self._new_session(limit=100)
        return self._http

    def _new_session(self, *, limit: int) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=limit, ssl=self._ssl)
        return aiohttp.ClientSession(connector=connector, headers=self._headers, timeout=self._timeout)

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for session in (self._http, self._streams):
            if session is not None:
                await session.close()
        self._http = self._streams = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        data = None if body is None else orjson.dumps(body)
        headers = self._token.header()
        if data is not None:
            headers["Content-Type"] = content_type
        async with self._session(streams=False).request(
            method, self._server + path, params=params, data=data, headers=headers
        ) as response:
            content = await response.read()
            if 200 <= response.status < 300:
                return dict(orjson.loads(content)) if content else {}
            raise api_error(response.status, response.reason or "", content, response.headers)

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self.request("GET", resource.path(namespace, name))
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(
        self, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Every matching object, following `continue` tokens; items get their apiVersion/kind back."""
        items, _ = await self.list_versioned(resource, namespace, label_selector=label_selector)
        return items

    async def list_versioned(
        self, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None
    ) -> tuple[builtins.list[dict[str, Any]], str]:
        """`list`, plus the collection's resourceVersion (where a watch continues from)."""
        params = {"limit": "500"}
        if label_selector:
            params["labelSelector"] = label_selector
        items: builtins.list[dict[str, Any]] = []
        while True:
            page = await self.request("GET", resource.path(namespace), params=params)
            # List items come without apiVersion/kind; put them back so items look like GETs.
            items += [
                {"apiVersion": resource.api_version, "kind": resource.kind, **item}
                for item in page.get("items") or []
            ]
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return items, str(meta.get("resourceVersion") or "")
            params["continue"] = token

    async def apply(
        self, resource: Resource, body: Mapping[str, Any], *, field_manager: str, force: bool = True
    ) -> dict[str, Any]:
        """Server-side apply: this manager's fields become exactly `body`'s; `force` takes them over."""
        metadata = body["metadata"]
        path = resource.path(metadata.get("namespace"), metadata["name"])
        # fieldValidation=Ignore: under the default (Warn) the API server parses every apply body a
        # second time, strictly, to look for unknown or duplicate fields, for warnings this client
        # never reads: a tenth of its CPU in a burst of new meshes (docs/benchmarks.md). Nothing in a
        # body is free-form: the builders' output is checked strictly against the API's schema in the
        # tests (tests/unit/test_manifests_validate.py, tests/integration/test_builders_apiserver.py),
        # and spec.scheduling.affinity, once passed through as it came, is typed in the CRD.
        params = {
            "fieldManager": field_manager,
            "force": "true" if force else "false",
            "fieldValidation": "Ignore",
        }
        # JSON is YAML, and the API server accepts it under the apply-patch content type.
        return await self.request("PATCH", path, params=params, body=body, content_type=APPLY_PATCH)

    async def delete(
        self, resource: Resource, name: str, namespace: str | None = None, *, propagation: str = "Background"
    ) -> bool:
        """Delete; False when it was already gone. Background propagation lets the GC take dependents."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        try:
            await self.request("DELETE", resource.path(namespace, name), body=body)
        except KubeApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def patch_status(
        self,
        resource: Resource,
        name: str,
        namespace: str | None,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """Merge-patch the status subresource (lists such as conditions are replaced whole).

        With `resource_version` the API server refuses (409) a patch computed from a stale read, so a
        condition another controller added in between is never overwritten by our whole list."""
        path = resource.path(namespace, name, "status")
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        return await self.request("PATCH", path, body=body, content_type=MERGE_PATCH)

    async def watch_one(
        self, resource: Resource, name: str, namespace: str, *, resource_version: str | None, timeout_s: int
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events (`{type, object}`) of one object, by a `metadata.name` field selector.

        Without `resource_version` the API server first sends the current object as ADDED. Ends when
        the server closes the watch (after `timeout_s`); an expired `resource_version` raises 410."""
        async for event in self.watch(
            resource,
            namespace,
            field_selector=f"metadata.name={name}",
            resource_version=resource_version,
            timeout_s=timeout_s,
        ):
            yield event

    async def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        timeout_s: int,
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events (`{type, object}`, bookmarks included) of a kind, in one namespace or all.

        Objects carry their apiVersion/kind (the API server sends them in watch events). Ends when the
        server closes the watch (after `timeout_s`); an expired `resource_version` raises 410."""
        params = {"watch": "true", "timeoutSeconds": str(timeout_s), "allowWatchBookmarks": "true"}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if resource_version:
            params["resourceVersion"] = resource_version
        timeout = aiohttp.ClientTimeout(total=None, connect=10.0, sock_read=timeout_s + 30.0)
        async with self._session(streams=True).get(
            self._server + resource.path(namespace),
            params=params,
            timeout=timeout,
            headers=self._token.header(),
        ) as response:
            if not 200 <= response.status < 300:
                raise api_error(
                    response.status, response.reason or "", await response.read(), response.headers
                )
            async for line in _lines(response.content):
                event = orjson.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise KubeApiError(
                        int(status.get("code") or 500), str(status.get("reason")), str(status.get("message"))
                    )
                yield event

    async def served(self, api_version: str, plural: str) -> bool:
        """Whether the API server serves `plural` in `api_version` (discovery; needs no RBAC rule)."""
        return plural in await self.served_plurals(api_version)

    async def served_plurals(self, api_version: str) -> set[str]:
        """Every resource `api_version` serves (empty when the group/version is not served at all)."""
        group = api_version.rpartition("/")[0]
        path = f"/apis/{api_version}" if group else f"/api/{api_version}"
        try:
            listing = await self.request("GET", path)
        except KubeApiError as exc:
            if exc.status in (403, 404):
                return set()
            raise
        return {str(r.get("name")) for r in listing.get("resources") or []}


async def _lines(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Non-empty lines of a watch stream. Split here, not with `StreamReader.readline`, which refuses
    lines over 128 KB (one watch event is one line, and a ConfigMap may be up to 1 MB)."""
    pending: list[bytes] = []
    async for chunk in stream.iter_any():
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            line = b"".join([*pending, chunk[start:end]]) if pending else chunk[start:end]
            pending.clear()
            start = end + 1
            if line.strip():
                yield line
        if start < len(chunk):
            pending.append(chunk[start:])
    if pending and (line := b"".join(pending)).strip():
        yield line


def api_error(status: int, reason: str, content: bytes, headers: Mapping[str, str]) -> KubeApiError:
    """The API server's answer as a `KubeApiError`: the `Status` object's reason and message if any."""
    message = content[:500].decode("utf-8", "replace")
    with contextlib.suppress(ValueError):
        body = orjson.loads(content)
        if isinstance(body, dict):
            reason = str(body.get("reason") or reason)
            message = str(body.get("message") or message)
    retry_after: float | None = None
    with contextlib.suppress(ValueError):
        retry_after = float(headers.get("Retry-After", ""))
    return KubeApiError(status, reason, message, retry_after)
