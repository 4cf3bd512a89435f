"""docs/status.md documents exactly the condition types, reasons and phases of api/status.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from actormesh_operator.api.status import ConditionType, Phase, Reason

DOC = Path(__file__).resolve().parents[2] / "docs" / "status.md"


def _first_column(section: str) -> list[str]:
    """Backticked names in the first column of the table under `## section`."""
    text = DOC.read_text()
    match = re.search(rf"^## {section}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"docs/status.md has no '## {section}' section"
    return re.findall(r"^\| `([A-Za-z]+)` \|", match.group(1), re.M)


@pytest.mark.parametrize(
    ("section", "values"),
    [
        pytest.param("Conditions", [c.value for c in ConditionType], id="conditions"),
        pytest.param("Reasons", [r.value for r in Reason], id="reasons"),
        pytest.param("Phases", [p.value for p in Phase], id="phases"),
    ],
)
def test_docs_list_exactly_the_constants(section: str, values: list[str]) -> None:
    documented = _first_column(section)
    assert len(documented) == len(set(documented)), f"duplicates in {section}"
    assert sorted(documented) == sorted(values)


def test_reasons_say_which_condition_uses_them() -> None:
    text = DOC.read_text()
    for reason in Reason:
        row = re.search(rf"^\| `{reason.value}` \| (\w+)=(True|False) \|", text, re.M)
        assert row, f"{reason.value}: no 'Condition=Status' column"
        assert row.group(1) in {c.value for c in ConditionType}
