"""errors.py: every exception becomes retry-with-backoff or stop, with a message naming the action."""

from __future__ import annotations

import aiohttp
import kopf
import pytest

from actormesh_operator.api.spec import ActorMesh, InvalidSpec
from actormesh_operator.api.status import STALL_REASONS, Reason
from actormesh_operator.reconcile.errors import (
    ActionFailed,
    MissingSecretError,
    action,
    backoff_delay,
    classify,
    exhausted,
    to_kopf,
)
from actormesh_operator.reconcile.kube import KubeApiError


def _failed(exc: Exception, name: str = "apply statefulset demo-nats") -> ActionFailed:
    try:
        with action(name):
            raise exc
    except ActionFailed as wrapped:
        return wrapped
    raise AssertionError("action() did not wrap")


@pytest.mark.parametrize(
    ("exc", "kind", "permanent", "reason"),
    [
        pytest.param(
            KubeApiError(422, "Invalid", "spec.x: bad"), "Invalid", True, Reason.APPLY_REJECTED, id="422"
        ),
        pytest.param(
            KubeApiError(400, "BadRequest", "bad"), "Invalid", True, Reason.APPLY_REJECTED, id="400"
        ),
        pytest.param(
            KubeApiError(403, "Forbidden", "no"), "Forbidden", True, Reason.APPLY_REJECTED, id="403"
        ),
        pytest.param(
            KubeApiError(
                403,
                "Forbidden",
                'serviceaccounts "demo-runtime" is forbidden: cannot set blockOwnerDeletion in this case '
                "because cannot find RESTMapping for APIVersion actormesh.io/v1alpha1 Kind ActorMesh",
            ),
            "DiscoveryLag",
            False,
            Reason.RETRIES_EXHAUSTED,
            id="403-crd-just-installed",
        ),
        pytest.param(
            KubeApiError(409, "Conflict", "rv"), "Conflict", False, Reason.RETRIES_EXHAUSTED, id="409"
        ),
        pytest.param(
            KubeApiError(404, "NotFound", "ns"), "NotFound", False, Reason.RETRIES_EXHAUSTED, id="404"
        ),
        pytest.param(
            KubeApiError(429, "TooManyRequests", "x"), "Throttled", False, Reason.RETRIES_EXHAUSTED, id="429"
        ),
        pytest.param(
            KubeApiError(500, "InternalError", "etcd"),
            "ApiServerError",
            False,
            Reason.RETRIES_EXHAUSTED,
            id="500",
        ),
        pytest.param(
            KubeApiError(401, "Unauthorized", "token"),
            "Unauthorized",
            False,
            Reason.RETRIES_EXHAUSTED,
            id="401",
        ),
        pytest.param(
            aiohttp.ClientConnectionError("refused"),
            "ApiUnreachable",
            False,
            Reason.RETRIES_EXHAUSTED,
            id="connect-error",
        ),
        pytest.param(TimeoutError("slow"), "ApiUnreachable", False, Reason.RETRIES_EXHAUSTED, id="timeout"),
        pytest.param(
            MissingSecretError("spec.llm.apiKeySecretRef: Secret ns/x not found"),
            "MissingSecretError",
            True,
            Reason.SECRET_NOT_FOUND,
            id="missing-secret",
        ),
        pytest.param(
            InvalidSpec(["spec.nats.replicas: must be 1 or 3"]),
            "InvalidSpec",
            True,
            Reason.INVALID_SPEC,
            id="invalid-spec",
        ),
        pytest.param(
            KeyError("surprise"), "InternalError", False, Reason.RETRIES_EXHAUSTED, id="unknown-bug"
        ),
    ],
)
def test_classification(exc: Exception, kind: str, permanent: bool, reason: Reason) -> None:
    failure = classify(_failed(exc))
    assert (failure.kind, failure.permanent, failure.reason) == (kind, permanent, reason)
    assert failure.message.startswith("apply statefulset demo-nats: ")
    assert failure.reason in STALL_REASONS


def test_message_names_action_and_api_reason() -> None:
    failure = classify(_failed(KubeApiError(422, "Invalid", "spec.replicas: must be >= 0")))
    assert failure.message == "apply statefulset demo-nats: 422 Invalid: spec.replicas: must be >= 0"


def test_invalid_mesh_body_is_permanent_and_names_the_field() -> None:
    with pytest.raises(InvalidSpec) as raised:
        ActorMesh.from_body({"metadata": {"name": "m", "namespace": "n"}, "spec": {"image": "x", "bogus": 1}})
    failure = classify(raised.value)
    assert failure.permanent
    assert "spec.bogus" in failure.message


def test_nested_actions_keep_the_innermost_name() -> None:
    with pytest.raises(ActionFailed) as raised, action("reconcile"), action("delete deployment demo-mocks"):
        raise KubeApiError(500, "InternalError", "boom")
    assert raised.value.action == "delete deployment demo-mocks"


@pytest.mark.parametrize(
    ("retry", "rng", "expected"),
    [
        pytest.param(0, 1.0, 5.0, id="first-max-jitter"),
        pytest.param(0, 0.0, 2.5, id="first-min-jitter"),
        pytest.param(3, 1.0, 40.0, id="doubles"),
        pytest.param(20, 1.0, 300.0, id="capped"),
    ],
)
def test_backoff_is_exponential_jittered_and_capped(retry: int, rng: float, expected: float) -> None:
    assert backoff_delay(retry, base=5.0, cap=300.0, rng=lambda: rng) == expected


def test_transient_becomes_temporary_error_until_retries_run_out() -> None:
    failure = classify(KubeApiError(409, "Conflict", "rv"))
    first = to_kopf(failure, retry=0, max_retries=3, base=5.0, cap=60.0)
    assert isinstance(first, kopf.TemporaryError)
    assert 2.5 <= float(first.delay or 0) <= 5.0
    assert not exhausted(failure, retry=1, max_retries=3)
    assert exhausted(failure, retry=2, max_retries=3)
    assert isinstance(to_kopf(failure, retry=2, max_retries=3, base=5.0, cap=60.0), kopf.PermanentError)


def test_retry_after_is_respected() -> None:
    failure = classify(KubeApiError(429, "TooManyRequests", "slow down", retry_after=30.0))
    error = to_kopf(failure, retry=0, max_retries=5, base=1.0, cap=10.0)
    assert isinstance(error, kopf.TemporaryError)
    assert error.delay == 30.0


def test_permanent_stops_at_once() -> None:
    failure = classify(MissingSecretError("gone"))
    assert exhausted(failure, retry=0, max_retries=8)
    assert isinstance(to_kopf(failure, retry=0, max_retries=8, base=1.0, cap=1.0), kopf.PermanentError)
