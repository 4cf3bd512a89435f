"""`make help` lists every phony target with its one-line description (the `##` line above it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def phony_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return {t for line in re.findall(r"^\.PHONY:(.*)$", text, re.M) for t in line.split()}


def test_every_phony_target_is_listed_with_a_description() -> None:
    if shutil.which("make") is None:
        pytest.fail("make is not installed")
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    listed = {}
    for line in out.splitlines():
        name, _, doc = line.strip().partition(" ")
        listed[name] = doc.strip()
    undocumented = sorted(t for t in phony_targets() if not listed.get(t))
    assert undocumented == [], "add a `## one line` above each of these targets"


def test_each_description_is_a_whole_line() -> None:
    """`make help` shows only the first `##` line: one that runs on into the next line reads cut off."""
    if shutil.which("make") is None:
        pytest.fail("make is not installed")
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    cut = [line.strip() for line in out.splitlines() if line.rstrip().endswith((",", ":", "(", ";", "-"))]
    assert cut == [], "make the first `##` line above these targets a whole sentence"
