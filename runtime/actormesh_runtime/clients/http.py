"""The HTTP exchange under the commerce client: one request in, status and body out.

`AiohttpExchange` is what runs: one aiohttp session per process, a keep-alive connection pool,
one total timeout per call. The bench measured httpx at ~5x aiohttp's CPU per request on the same
calls (docs/benchmarks.md), and the commerce calls were the mesh's largest cost after the bus.
aiohttp is imported when the first exchange is built, so actors that call no API never load it.

`HttpxExchange` routes base URLs to in-process transports (`httpx.ASGITransport` on the mock apps,
`httpx.MockTransport`): the unit tests' way to run the client's logic without sockets.

Either raises `ExchangeFailed` when no HTTP response came back (refused, reset, timed out): the
commerce client retries those; any response, whatever its status, is returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from actormesh_runtime.net import retry_after_seconds

if TYPE_CHECKING:
    import aiohttp
    import httpx


class HttpResponse(NamedTuple):
    status: int
    body: bytes
    reason: str
    retry_after_s: float | None = None
    """The `Retry-After` header in seconds (a 429 or 503 asking the caller to wait), if any."""


class ExchangeFailed(Exception):
    """No response: the connection failed or the call timed out. The text names what happened."""


def _failed(exc: Exception) -> ExchangeFailed:
    """The failure of a transport exception, named by its class (its text may be empty)."""
    return ExchangeFailed(f"{type(exc).__name__}: {exc}".rstrip(": "))


class Exchange(Protocol):
    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        allow_redirects: bool = True,
    ) -> HttpResponse:
        """One HTTP request; `ExchangeFailed` if no response arrived. With `allow_redirects=False` a
        3xx comes back as it is (a followed redirect turns a POST into a GET of somewhere else)."""

    async def aclose(self) -> None:
        """Close the pool."""


POOL_SIZE = 100
"""Connections per process across the three APIs; more calls than this at once wait for one."""


class AiohttpExchange:
    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop (aiohttp binds its session to it).
        import aiohttp

        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=POOL_SIZE, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            raise_for_status=False,
            auto_decompress=True,
        )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        allow_redirects: bool = True,
    ) -> HttpResponse:
        import aiohttp

        session = self._session or self._open()
        try:
            async with session.request(
                method, url, params=params, json=json, headers=headers, allow_redirects=allow_redirects
            ) as response:
                body = await response.read()
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                return HttpResponse(response.status, body, response.reason or "", wait)
        except TimeoutError as exc:
            raise ExchangeFailed(f"timed out after {self._timeout_s:g} s") from exc
        except aiohttp.ClientError as exc:
            raise _failed(exc) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class HttpxExchange:
    """Base URL → transport (tests); unknown URLs go nowhere (httpx raises, reported as a failure)."""

    def __init__(self, timeout_s: float, mounts: dict[str, httpx.AsyncBaseTransport]) -> None:
        import httpx

        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), mounts=mounts)

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        allow_redirects: bool = True,
    ) -> HttpResponse:
        import httpx

        try:
            response = await self._client.request(
                method, url, params=params, json=json, headers=headers, follow_redirects=allow_redirects
            )
        except httpx.TransportError as exc:
            raise _failed(exc) from exc
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        return HttpResponse(response.status_code, response.content, response.reason_phrase, wait)

    async def aclose(self) -> None:
        await self._client.aclose()
