"""The OpenAPI document says which operations need a bearer token exactly when the gateway asks for one.

(The live contract test, tests/integration/test_gateway_contract.py, makes schemathesis send those
operations without a token and expect 401; this pins the declaration itself.)
"""

from __future__ import annotations

from typing import Any

from actormesh_runtime.gateway.app import create_app
from actormesh_runtime.settings import RuntimeSettings


def _document(**settings: Any) -> dict[str, Any]:
    return create_app(RuntimeSettings(nats_url="nats://127.0.0.1:1", **settings)).openapi()


def test_with_auth_on_every_operation_that_may_answer_401_declares_the_bearer_scheme() -> None:
    document = _document(jwt_secret="s" * 40)

    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            secured = op.get("security") == [{"bearer": []}]
            assert secured == ("401" in op["responses"]), (method, path)
    open_ops = {p for p, ops in document["paths"].items() for op in ops.values() if "security" not in op}
    assert open_ops == {"/api/health", "/api/ready"}, "only the probes are open"


def test_in_anonymous_mode_no_operation_asks_for_a_token() -> None:
    document = _document(gateway_anonymous=True)

    assert "securitySchemes" not in document["components"]
    assert not any("security" in op for ops in document["paths"].values() for op in ops.values())
