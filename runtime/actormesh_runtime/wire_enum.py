"""`WireEnum`: the base of every string enum a message carries. Standard library only, on the runtime's
lowest floor, so the catalog (which the operator imports too) and every record module can use it."""

from __future__ import annotations

import operator
from enum import StrEnum


class WireEnum(StrEnum):
    """The base of every string enum a message carries (the envelope's, the history's).

    pydantic's serializer reads `.value` of every enum member it writes: ~30 per envelope encode, at
    every hop. `Enum.value` is a descriptor written in Python, a frame per read; a str enum's value is
    the string `_value_` already holds, so here C code reads it (an envelope encode on hot caches:
    16.2 -> 14.2 us, docs/benchmarks.md). Members, lookups, equality with strings and pickling are
    StrEnum's own.
    """


# Set after the class is made: in the class body (where it would work the same) type checkers take it
# for a member, and refuse every subclass as extending an enum that has members.
setattr(WireEnum, "value", property(operator.attrgetter("_value_")))  # noqa: B010
