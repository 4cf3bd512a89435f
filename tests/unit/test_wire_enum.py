"""`wire_enum.WireEnum`: every enum a message carries reads its value in C, and behaves as a StrEnum."""

from __future__ import annotations

import pickle
import types
import typing
from enum import Enum

import pytest
from pydantic import BaseModel

from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import ActionType, Envelope, HistoryEvent, ProgressEvent
from actormesh_runtime.wire_enum import WireEnum


def _enums_in(model: type[BaseModel], seen: set[type] | None = None) -> set[type[Enum]]:
    """Every enum type a model's fields can hold, through nested models, lists, unions and dicts."""
    seen = set() if seen is None else seen
    if model in seen:
        return set()
    seen.add(model)
    found: set[type[Enum]] = set()
    pending: list[object] = [field.annotation for field in model.model_fields.values()]
    while pending:
        kind = pending.pop()
        if isinstance(kind, type) and issubclass(kind, Enum):
            found.add(kind)
        elif isinstance(kind, type) and issubclass(kind, BaseModel):
            found |= _enums_in(kind, seen)
        elif isinstance(kind, types.UnionType) or typing.get_origin(kind) is not None:
            pending.extend(typing.get_args(kind))
    return found


@pytest.mark.parametrize("message", [Envelope, HistoryEvent, ProgressEvent])
def test_every_enum_a_message_carries_is_a_wire_enum(message: type[BaseModel]) -> None:
    enums = _enums_in(message)
    assert ActorName in enums  # the walk reaches nested models (the trace, the slip)
    assert not {e.__name__ for e in enums if not issubclass(e, WireEnum)}


def test_the_value_is_the_plain_string_and_read_without_enum_machinery() -> None:
    member = ActorName.DECISION_ROUTER
    assert member.value == "decision_router"
    assert type(member.value) is str
    # The fast read is the class's own descriptor, not Enum's (written in Python).
    assert type(vars(WireEnum)["value"]) is property


def test_a_wire_enum_still_behaves_as_a_str_enum() -> None:
    member = ActionType.CANCEL_ORDER
    assert member == "cancel_order"
    assert ActionType("cancel_order") is member
    assert ActionType["CANCEL_ORDER"] is member
    assert member.name == "CANCEL_ORDER"
    assert str(member) == "cancel_order"
    assert f"{member}" == "cancel_order"
    assert pickle.loads(pickle.dumps(member)) is member
    assert "value" not in ActionType.__members__
