"""Small value types shared by the spec sections: quantities, Secret references, resources, storage.

`api/spec.py` composes these into `ActorMeshSpec`; `api/schema.py` turns the special JSON-schema
markers set here (int-or-string) into their structural CRD form.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

QUANTITY_PATTERN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,2}|[KMGTPE]i|[numkMGTPE])?$"
"""Kubernetes resource.Quantity, as accepted by the API server (decimal/binary SI suffix or exponent). The
exponent has at most two digits: `1e999999` matches Kubernetes' grammar, but no server holds that much and
the builders cannot even write it out in bytes for nats.conf (`quantity_bytes`)."""
POSITIVE_QUANTITY = r"^[+]?[0-9.]*[1-9]"
"""A quantity (already matching QUANTITY_PATTERN) above zero: no minus sign, and a non-zero digit before
any suffix. Written as a regex so the CRD's CEL rule and the model apply the very same test."""

QUANTITY_MAX_LENGTH = 64
"""Bounds the CEL cost of rules comparing quantities (storage immutability); no real quantity is longer."""

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
"""A Service name (and so the mesh name every child Service name starts with)."""
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
"""A key in a Secret's data."""

LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
"""A label or annotation key (a qualified name): an optional DNS-subdomain prefix and `/`, then a name of
at most 63 characters. The prefix's 253-character bound is checked apart (a regex cannot count it). No
backslash (`[.]`, not `\\.`), so the CRD's CEL rule can quote it as it is."""
LABEL_KEY_PREFIX_MAX = 253


def _label_key_prefix_fits(key: str) -> str:
    prefix, slash, _ = key.partition("/")
    if slash and len(prefix) > LABEL_KEY_PREFIX_MAX:
        raise ValueError(f"the prefix of {key!r} is longer than {LABEL_KEY_PREFIX_MAX} characters")
    return key


LabelKey = Annotated[
    str,
    Field(max_length=LABEL_KEY_PREFIX_MAX + 64, pattern=LABEL_KEY),
    AfterValidator(_label_key_prefix_fits),
]
"""A label or annotation key; the CRD checks the same with a CEL rule on each map (api/cel.py), as its
schema cannot constrain map keys."""

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


def _positive(quantity: str) -> str:
    if re.match(POSITIVE_QUANTITY, quantity) is None:
        raise ValueError(f"must be greater than zero, not {quantity!r}")
    return quantity


PositiveQuantity = Annotated[Quantity, AfterValidator(_positive)]
"""A quantity above zero (a volume's size); the CRD checks it with a CEL rule (api/cel.py)."""

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

    # A section with another default size subclasses this and overrides `size` (infra.NatsStorage): a
    # section default of `Storage(size=...)` would be lost as soon as the user sets only the class, since
    # the field default below then fills the size, in the model and in the CRD's stored defaults alike.
    size: PositiveQuantity = "1Gi"
    """Requested capacity; immutable."""
    storage_class_name: str | None = Field(None, max_length=253, pattern=DNS1123_SUBDOMAIN)
    """StorageClass (unset: the cluster default); immutable."""
