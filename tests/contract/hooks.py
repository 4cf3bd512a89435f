"""schemathesis hook of the gateway contract test (tests/integration/test_gateway_contract.py).

`Idempotency-Key` is one request's key: the same key with a different request is refused with 422 on
purpose (draft-ietf-httpapi-idempotency-key-header; docs/gateway.md#idempotency-key-safe-retries).
A schema cannot say that, and the generator reuses values ("0" as the key of many different bodies),
so `positive_data_acceptance` would take the refusal of a reused key for a schema-valid request
refused. Each well-formed key is therefore suffixed with a digest of the body it travels with: equal
requests keep equal keys (the replay path stays covered), different ones get different keys. A
malformed key, which the check expects refused, is sent as generated.

The "not only blanks" pattern of a message (`gateway.models.SCHEMA_PATTERNS["message"]`) excludes lone
surrogates, which no Rust regex can name, so schemathesis drops the whole pattern ("Unsupported regex
patterns") and may generate a blank-only message (a lone C1 control, say) as schema-valid; the gateway
rightly refuses it with 422. A positive case's such field gets a visible first character instead,
so `positive_data_acceptance` judges requests the schema really allows.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import schemathesis
from schemathesis.generation import GenerationMode

from actormesh_runtime.gateway.approvals_api import DenyBody
from actormesh_runtime.gateway.escalations_api import ReplyBody
from actormesh_runtime.gateway.idempotency import HEADER, KEY_RE
from actormesh_runtime.gateway.models import SCHEMA_PATTERNS, ChatRequest
from actormesh_runtime.pii import has_visible

NOT_BLANK_FIELDS = frozenset(
    name
    for model in (ChatRequest, ReplyBody, DenyBody)
    for name, field in model.model_fields.items()
    if isinstance(field.json_schema_extra, dict)
    and field.json_schema_extra.get("pattern") == SCHEMA_PATTERNS["message"]
)
"""The body fields whose schema pattern is the message's "not only blanks"."""


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    # At generation, not in `before_call`: an edit there makes schemathesis re-judge the headers, and
    # a case missing `Authorization` on purpose (never a declared header) then counted as valid and
    # was sent with the token again.
    if (
        case.meta is not None
        and case.meta.generation.mode == GenerationMode.POSITIVE
        and isinstance(case.body, dict)
    ):
        for name in NOT_BLANK_FIELDS & case.body.keys():
            value = case.body[name]
            if isinstance(value, str) and value and not has_visible(value):
                case.body[name] = "x" + value[1:]  # same length: maxLength still holds
    key = (case.headers or {}).get(HEADER)
    if isinstance(key, str) and KEY_RE.fullmatch(key) is not None:
        body = json.dumps(case.body, sort_keys=True, default=repr)
        case.headers[HEADER] = f"{key[:64]}-{hashlib.sha256(body.encode()).hexdigest()[:32]}"
    return case
