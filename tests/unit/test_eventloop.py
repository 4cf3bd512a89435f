"""`commands.eventloop.run`: uvloop where installed unless EVENT_LOOP says otherwise."""

from __future__ import annotations

import sys

import pytest

from actormesh_runtime.commands import eventloop


async def _which() -> str:
    return eventloop.loop_name()


def test_auto_runs_on_uvloop_when_it_is_installed() -> None:

    assert eventloop.run(_which(), "auto") == "uvloop"


def test_asyncio_forces_the_standard_loop() -> None:
    assert eventloop.run(_which(), "asyncio") == "asyncio"


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` now raises ImportError

    assert eventloop.run(_which(), "auto") == "asyncio"


def test_uvloop_required_but_missing_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)

    with pytest.raises(ImportError):
        eventloop.run(_which(), "uvloop")
