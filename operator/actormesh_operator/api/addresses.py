"""Patterns for the network addresses a spec may hold: server URLs and CIDR ranges.

The same pattern is checked at admission (the CRD) and by the model, so the two refuse the same strings.
They are tight enough that the builders can parse what passes: `urllib.parse.urlsplit(url).port`
(builders/network.py) and `ipaddress.ip_network` raise on a port out of range or a bad address, which
would otherwise surface as a retried "internal" error naming no field.

Each is ~1,600 characters (the IPv6 spellings). As an OpenAPI `pattern`, the API server's refusal quotes
it whole, so `checked_string` puts it in a CEL rule with a message a person can read instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema


def cel_string(text: str) -> str:
    """`text` as a CEL string literal (a regex's backslashes doubled)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class CheckedString:
    """`Annotated[str, CheckedString(...)]`: the string must match `pattern` (whole) and be at most
    `max_length` long, refused with `message` by the model and by a CEL rule on the field alike (the API
    server prefixes the field path; the model's errors get it from `api.spec._describe`)."""

    pattern: str
    message: str
    max_length: int

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        compiled = re.compile(self.pattern)

        def check(value: str) -> str:
            if len(value) > self.max_length:
                raise ValueError(f"must be at most {self.max_length} characters")
            if not compiled.fullmatch(value):
                raise ValueError(self.message)
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        rule = {"rule": f"self.matches({cel_string(self.pattern)})", "message": self.message}
        return {"type": "string", "maxLength": self.max_length, "x-kubernetes-validations": [rule]}


_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
IPV4 = rf"({_OCTET}\.){{3}}{_OCTET}"
"""A dotted-quad IPv4 address without leading zeros (Python's ipaddress refuses them, as Go's netip does)."""
_HEXTET = "[0-9a-fA-F]{1,4}"
IPV6 = (
    "("
    + "|".join(
        [
            f"({_HEXTET}:){{7}}{_HEXTET}",
            f"({_HEXTET}:){{1,7}}:",
            f"({_HEXTET}:){{1,6}}:{_HEXTET}",
            f"({_HEXTET}:){{1,5}}(:{_HEXTET}){{1,2}}",
            f"({_HEXTET}:){{1,4}}(:{_HEXTET}){{1,3}}",
            f"({_HEXTET}:){{1,3}}(:{_HEXTET}){{1,4}}",
            f"({_HEXTET}:){{1,2}}(:{_HEXTET}){{1,5}}",
            f"{_HEXTET}:(:{_HEXTET}){{1,6}}",
            f":((:{_HEXTET}){{1,7}}|:)",
            # The last 32 bits as a dotted quad (`::ffff:10.0.0.1`): at most six hextets with it.
            f"({_HEXTET}:){{6}}{IPV4}",
            f"::({_HEXTET}:){{0,5}}{IPV4}",
            *(f"({_HEXTET}:){{{n}}}{_HEXTET}::({_HEXTET}:){{0,{4 - n}}}{IPV4}" for n in range(5)),
        ]
    )
    + ")"
)
"""An IPv6 address in any RFC 4291 spelling (one `::` at most, eight hextets), as Python's ipaddress
reads it (tests/unit/test_api_admission.py compares the two)."""

PORT = "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
"""0-65535, as urllib's `.port` accepts it."""


def url_pattern(schemes: str, tail: str, *, excluded: str = "") -> str:
    """One URL, unanchored: `scheme://[userinfo@]host[:port]` then `tail` (path, query...). The host is a
    name (no `:`, which urllib would take for the port's start) or a bracketed IPv6 address; `excluded`
    characters (e.g. the `,` separating a list of URLs) appear nowhere."""
    userinfo = rf"[^\s/?#@\[\]{excluded}]*@"
    host = rf"(\[{IPV6}\]|[^\s/?#@:\[\]{excluded}]+)"
    return rf"({schemes})://({userinfo})?{host}(:{PORT})?{tail}"


CIDR = rf"^{IPV4}/(3[0-2]|[12]?[0-9])$|^{IPV6}/(12[0-8]|1[01][0-9]|[1-9]?[0-9])$"
"""An IPv4 or IPv6 range `address/prefix`. Bits set past the prefix are allowed, as in a NetworkPolicy's
ipBlock (`10.1.2.3/8` is 10.0.0.0/8)."""
