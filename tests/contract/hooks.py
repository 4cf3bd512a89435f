"""schemathesis hook of the gateway contract test (tests/integration/test_gateway_contract.py).

`Idempotency-Key` is one request's key: the same key with a different request is refused with 422 on
purpose (draft-ietf-httpapi-idempotency-key-header; docs/gateway.md#idempotency-key-safe-retries).
A schema cannot say that, and the generator reuses values ("0" as the key of many different bodies),
so `positive_data_acceptance` would take the refusal of a reused key for a schema-valid request
refused. Each well-formed key is therefore suffixed with a digest of the body it travels with: equal
requests keep equal keys (the replay path stays covered), different ones get different keys. A
malformed key, which the check expects refused, is sent as generated.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import schemathesis

HEADER = "Idempotency-Key"
WELL_FORMED = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    # At generation, not in `before_call`: an edit there makes schemathesis re-judge the headers, and
    # a case missing `Authorization` on purpose (never a declared header) then counted as valid and
    # was sent with the token again.
    key = (case.headers or {}).get(HEADER)
    if isinstance(key, str) and WELL_FORMED.fullmatch(key) is not None:
        body = json.dumps(case.body, sort_keys=True, default=repr)
        case.headers[HEADER] = f"{key[:64]}-{hashlib.sha256(body.encode()).hexdigest()[:32]}"
    return case
