"""Every failure of a reconcile becomes one of two things: retry after a delay, or stop.

`runner.py` wraps each step of a reconcile in `action("apply nats statefulset")`; whatever the step
raises is classified here into a `Failure` (condition reason, message naming the action, permanent or
not), and `to_kopf` turns that into `kopf.TemporaryError` with an exponential, jittered backoff or
`kopf.PermanentError`. Retries are bounded: `exhausted` tells the reconciler when to give up, write the
`Stalled` condition and post an Event instead of asking kopf for yet another attempt. kopf's own
default (retry any exception forever, every 60 s) is never reached.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import aiohttp
import kopf
import pydantic

from actormesh_operator.api.spec import InvalidSpec
from actormesh_operator.api.status import Reason
from actormesh_operator.reconcile.kube import KubeApiError


class ReconcileError(Exception):
    """A failure we raise ourselves, carrying its condition reason and whether a retry can help."""

    reason: Reason = Reason.RECONCILE_FAILED
    permanent = False


class MissingSecretError(ReconcileError):
    """A Secret the spec references does not exist (or lacks the key): nothing to do until it appears."""

    reason = Reason.SECRET_NOT_FOUND
    permanent = True


class SharedNameClashError(ReconcileError):
    """An older mesh of the same name uses the same external NATS or Redis (`clash.py`): nothing to do
    until one of the two is renamed, moved to another server or deleted."""

    reason = Reason.SHARED_NAME_CLASH
    permanent = True


class ActionFailed(Exception):
    """An exception annotated with the action that raised it, e.g. `apply nats statefulset`."""

    def __init__(self, action: str, cause: BaseException) -> None:
        super().__init__(f"{action}: {cause}")
        self.action = action
        self.cause = cause


@contextlib.contextmanager
def action(name: str) -> Iterator[None]:
    """Name the step in progress, so a failure's message says what was being done."""
    try:
        yield
    except ActionFailed:
        raise
    except Exception as exc:
        raise ActionFailed(name, exc) from exc


@dataclass(frozen=True)
class Failure:
    """A classified failure: what the `Stalled` condition, the Event and the error metric will say."""

    reason: Reason
    """Stalled reason if the failure is (or becomes) permanent."""
    kind: str
    """Short cause for logs and the `errors` metric label: `Conflict`, `ApiUnreachable`, ..."""
    message: str
    permanent: bool
    retry_after: float | None = None


# API statuses after which the same request can succeed without anyone changing the spec.
_TRANSIENT_STATUS = {404: "NotFound", 408: "Timeout", 409: "Conflict", 410: "Expired", 429: "Throttled"}
_PERMANENT_STATUS = {400: "Invalid", 403: "Forbidden", 405: "NotAllowed", 415: "Unsupported", 422: "Invalid"}


def classify(exc: BaseException) -> Failure:
    """Map any exception to a Failure; unknown exceptions are transient (and still bounded)."""
    prefix = ""
    if isinstance(exc, ActionFailed):
        prefix, exc = f"{exc.action}: ", exc.cause
    message = f"{prefix}{exc}" if str(exc) else f"{prefix}{type(exc).__name__}"
    if isinstance(exc, ReconcileError):
        return Failure(exc.reason, type(exc).__name__, message, exc.permanent)
    if isinstance(exc, InvalidSpec):
        return Failure(Reason.INVALID_SPEC, "InvalidSpec", message, permanent=True)
    if isinstance(exc, KubeApiError):
        return _classify_api(exc, message)
    if isinstance(exc, aiohttp.ClientError | TimeoutError | ConnectionError):
        return Failure(Reason.RETRIES_EXHAUSTED, "ApiUnreachable", message, permanent=False)
    if isinstance(exc, pydantic.ValidationError):
        return Failure(Reason.INVALID_SPEC, "InvalidSpec", f"{prefix}{_first_errors(exc)}", permanent=True)
    return Failure(
        Reason.RETRIES_EXHAUSTED, "InternalError", f"{prefix}{type(exc).__name__}: {exc}", permanent=False
    )


# A 403 that says the API server does not know the owner's kind yet: right after the CRD is
# installed, the OwnerReferencesPermissionEnforcement admission plugin's REST mapping lags discovery
# for a few seconds (seen on the e2e cluster: `cannot set blockOwnerDeletion ... cannot find
# RESTMapping`). Nothing has to change for the retry to succeed.
_DISCOVERY_LAG = "cannot find RESTMapping"


def _classify_api(exc: KubeApiError, message: str) -> Failure:
    if exc.status == 403 and _DISCOVERY_LAG in exc.message:
        return Failure(Reason.RETRIES_EXHAUSTED, "DiscoveryLag", message, permanent=False)
    if exc.status in _PERMANENT_STATUS:
        return Failure(Reason.APPLY_REJECTED, _PERMANENT_STATUS[exc.status], message, permanent=True)
    kind = _TRANSIENT_STATUS.get(exc.status, "ApiServerError")
    if exc.status == 401:
        # A rotated or not-yet-valid token: the next attempt re-reads it.
        kind = "Unauthorized"
    return Failure(Reason.RETRIES_EXHAUSTED, kind, message, permanent=False, retry_after=exc.retry_after)


def _first_errors(exc: pydantic.ValidationError, limit: int = 3) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:limit]]
    return "invalid spec: " + "; ".join(parts)


def backoff_delay(retry: int, *, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with jitter: base·2^retry capped, then scaled by a random 0.5 to 1.0."""
    ceiling = min(cap, base * (2 ** max(retry, 0)))
    return float(round(ceiling * (0.5 + rng() / 2), 3))


def exhausted(failure: Failure, *, retry: int, max_retries: int) -> bool:
    """True when no further attempt should be scheduled: permanent, or this was the last retry."""
    return failure.permanent or retry + 1 >= max_retries


def to_kopf(
    failure: Failure, *, retry: int, max_retries: int, base: float, cap: float
) -> kopf.TemporaryError | kopf.PermanentError:
    """The exception a kopf handler raises for this failure (the caller raises it `from` the cause)."""
    if exhausted(failure, retry=retry, max_retries=max_retries):
        return kopf.PermanentError(failure.message)
    delay = backoff_delay(retry, base=base, cap=cap)
    if failure.retry_after is not None:
        delay = max(delay, failure.retry_after)
    return kopf.TemporaryError(failure.message, delay=delay)
