"""Shared test plumbing: the `unused_port` fixture; in CI a missing component fails, never skips, and
the property tests draw the same examples every run."""

from __future__ import annotations

import os
import shutil

import pytest
from hypothesis import settings

from tests.support.ports import free_port

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# In CI a property test explores the same examples on every run (seeded from the test itself), so a
# stop is never refused for a counterexample that a developer's runs had not met yet; locally each
# run draws new examples, which is where new counterexamples are found (and then kept as @example).
settings.register_profile("ci", derandomize=True, database=None)
if IN_CI:
    settings.load_profile("ci")


def missing_component(what: str, how: str) -> None:
    """Skip locally with instructions; in CI (CI=true) fail, so a gap can never hide behind a skip."""
    message = f"{what} is not available: {how}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_binary(name: str, how: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing_component(f"`{name}`", how)
        raise AssertionError("unreachable")
    return path


@pytest.fixture
def unused_port() -> int:
    return free_port()
