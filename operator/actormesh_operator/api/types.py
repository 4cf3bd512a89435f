"""Small value types shared by the spec sections: quantities, Secret references, resources, storage.

`api/spec.py` composes these into `ActorMeshSpec`; `api/schema.py` turns the special JSON-schema
markers set here (int-or-string) into their structural CRD form.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

QUANTITY_PATTERN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$"
"""Kubernetes resource.Quantity, as accepted by the API server (decimal/binary SI suffix or exponent)."""

QUANTITY_MAX_LENGTH = 64
"""Bounds the CEL cost of rules comparing quantities (storage immutability); no real quantity is longer."""

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
"""A key in a Secret's data."""

LabelKey = Annotated[
    str,
    Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
    ),
]
"""A label or annotation key: optional DNS-subdomain prefix and `/`, then a name (checked by the model only:
CRDs cannot constrain map keys, so a bad key surfaces as `Stalled/InvalidSpec` naming the field)."""

LabelValue = Annotated[str, Field(max_length=63, pattern=r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")]
"""A Kubernetes label value (empty, or ≤ 63 alphanumerics, `-`, `_`, `.`)."""


def _quantity_to_str(value: Any) -> Any:
    # YAML turns `cpu: 1` into an int; Kubernetes accepts both forms, so do we.
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return str(value)
    return value


Quantity = Annotated[
    str,
    BeforeValidator(_quantity_to_str),
    Field(pattern=QUANTITY_PATTERN, max_length=QUANTITY_MAX_LENGTH),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": QUANTITY_PATTERN,
            "maxLength": QUANTITY_MAX_LENGTH,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""A Kubernetes quantity such as `500m`, `256Mi` or `1`; always a string once validated."""

_SUFFIX: dict[str, Decimal] = {
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30),
    "Ti": Decimal(2**40), "Pi": Decimal(2**50), "Ei": Decimal(2**60),
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"),
    "T": Decimal("1e12"), "P": Decimal("1e15"), "E": Decimal("1e18"),
}  # fmt: skip
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$")


def quantity_value(quantity: str) -> Decimal | None:
    """A Kubernetes quantity's exact value (`500m` → 0.5, `1Gi` → 1073741824), None if it is not one."""
    match = _QUANTITY.match(quantity)
    if match is None:
        return None
    number, suffix = Decimal(match.group(1)), match.group(2) or ""
    try:
        # `E` and `Ei` are suffixes (exa, exbi); only `e`/`E` followed by digits is an exponent.
        scale = _SUFFIX[suffix] if suffix in _SUFFIX else Decimal(10) ** int(suffix[1:])
        return number * scale
    except ArithmeticError:  # an exponent beyond Decimal's range
        return None


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes quantity as whole bytes, rounded up (nats.conf does not accept every Kubernetes
    spelling, e.g. `1.5Gi` or `1e9`, and the spec compares JetStream limits with storage sizes)."""
    value = quantity_value(quantity)
    if value is None:
        raise ValueError(f"not a quantity: {quantity!r}")
    return int(value.to_integral_value(rounding=ROUND_CEILING))


class ApiModel(BaseModel):
    """Base of every spec model: camelCase on the wire, unknown fields rejected, snake_case in Python."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        frozen=True,
        use_attribute_docstrings=True,
    )

    def to_k8s(self) -> dict[str, Any]:
        """The camelCase dict a Kubernetes manifest wants (unset optional fields left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class SecretKeyRef(ApiModel):
    """A key in a Secret in the mesh's namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)
    """Name of the Secret."""
    key: str = Field(min_length=1, max_length=253, pattern=SECRET_KEY)
    """Key within the Secret."""


class LocalObjectReference(ApiModel):
    """A reference by name to an object in the mesh's namespace (as in `imagePullSecrets`)."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)


class Resources(ApiModel):
    """Container resource requests and limits, as in a Pod spec."""

    requests: dict[str, Quantity] = Field(default_factory=dict)
    """Minimum guaranteed resources, e.g. `{cpu: 100m, memory: 128Mi}`."""
    limits: dict[str, Quantity] = Field(default_factory=dict)
    """Hard caps, e.g. `{memory: 256Mi}`."""

    def to_k8s(self) -> dict[str, Any]:
        # An empty map would be dropped by the API server and then look like drift on every compare.
        return {k: v for k, v in super().to_k8s().items() if v}


class Storage(ApiModel):
    """A PersistentVolumeClaim request. The size cannot change after creation (StatefulSet templates)."""

    size: Quantity = "1Gi"
    """Requested capacity; immutable."""
    storage_class_name: str | None = Field(None, max_length=253)
    """StorageClass (unset: the cluster default); immutable."""
