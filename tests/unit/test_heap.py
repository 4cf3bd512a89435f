"""heap.py: start-up's garbage is collected, what survives is frozen out of the collector's walks."""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Iterator

import pytest

from actormesh_runtime import heap


class Node:
    """A plain instance: tracked by the collector, so it is either walked or frozen."""

    other: Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """This worker's other tests keep a collectable heap."""
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _walked(obj: object) -> bool:
    # gc.get_objects() lists the collected generations only, not the permanent (frozen) one.
    return any(candidate is obj for candidate in gc.get_objects())


def test_garbage_is_collected_first_and_survivors_are_frozen(
    unfrozen: None, caplog: pytest.LogCaptureFixture
) -> None:
    kept = Node()
    cycle = Node()
    cycle.other = cycle  # only the cycle collector frees it
    gone = weakref.ref(cycle)
    del cycle
    assert _walked(kept)

    with caplog.at_level(logging.INFO, logger=heap.__name__):
        frozen = heap.freeze_after_start("test")

    assert gone() is None, "start-up garbage is freed, not frozen for the life of the process"
    assert not _walked(kept), "a survivor is out of the collector's walks"
    assert frozen > 1000, "a test process holds tens of thousands of objects"
    (record,) = [r for r in caplog.records if r.getMessage() == "start-up heap frozen"]
    assert (record.component, record.objects) == ("test", frozen)  # type: ignore[attr-defined]


def test_objects_made_after_the_freeze_are_collected_as_before(unfrozen: None) -> None:
    heap.freeze_after_start("test")
    later = Node()
    later.other = later
    gone = weakref.ref(later)
    assert _walked(later)
    del later
    gc.collect()
    assert gone() is None
