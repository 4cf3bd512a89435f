"""Fixtures for tests against real servers; each lives in tests/support/ and is re-exported here."""

from tests.support.actormesh_crd import actormesh_crd  # noqa: F401
from tests.support.k8s import kube_control_plane, kube_namespace  # noqa: F401
from tests.support.llm_server import llm_server  # noqa: F401
from tests.support.nats import nats_process, nats_server  # noqa: F401
from tests.support.redis import redis_server  # noqa: F401
