"""config/monitoring/grafana-dashboard.json queries only metrics that exist, for the selected mesh only."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.unit.test_metrics_docs import defined_metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "config" / "monitoring" / "grafana-dashboard.json"
METRIC = re.compile(r"\bactormesh_[a-z_]+")


def panels() -> list[dict[str, Any]]:
    return list(json.loads(DASHBOARD.read_text())["panels"])


def test_every_query_uses_a_defined_metric_of_the_selected_mesh() -> None:
    known = set(defined_metrics())
    for panel in panels():
        for target in panel["targets"]:
            expr = target["expr"]
            assert 'namespace="$namespace", mesh="$mesh"' in expr, (
                f"{panel['title']}: not limited to the mesh"
            )
            for name in METRIC.findall(expr):
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                assert name in known or base in known, f"{panel['title']}: unknown metric {name}"


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in panels():
        pos = p["gridPos"]
        mine = {
            (x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & mine, f"{p['title']} overlaps another panel"
        assert pos["x"] + pos["w"] <= 24
        cells |= mine


def test_the_issue_asks_for_these_views() -> None:
    exprs = " ".join(t["expr"] for p in panels() for t in p["targets"])
    for metric in (
        "actormesh_messages_processed_total",
        "actormesh_queue_pending_messages",
        "actormesh_processing_seconds_bucket",
        "actormesh_gateway_request_seconds_bucket",
        "actormesh_dead_letters",
        "actormesh_llm_prompt_tokens_total",
        "actormesh_llm_requests_total",
    ):
        assert metric in exprs, metric
