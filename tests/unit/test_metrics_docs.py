"""docs/metrics.md lists exactly the metrics the code defines, with Prometheus-style names and types."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFINITION = re.compile(r"\b(Counter|Gauge|Histogram)\(\s*\"([a-z_:]+)\"", re.MULTILINE)
FAMILY = re.compile(r"\b(Counter|Gauge)MetricFamily\(\s*\"([a-z_:]+)\"", re.MULTILINE)
FAMILY_ROW = re.compile(r"^\s*\(\"([a-z_:]+)\", \"(counter|gauge)\",", re.MULTILINE)
"""Custom collectors (bus/server_metrics.py): literal families, and rows of a (name, type, ...) table."""
ROW = re.compile(r"^\| `([a-z_:]+)` \| (counter|gauge|histogram) \|", re.MULTILINE)


def defined_metrics() -> dict[str, str]:
    """Exposed name → type, from every Counter/Gauge/Histogram defined in the runtime and operator."""
    found: dict[str, str] = {}
    for source in [*ROOT.glob("runtime/actormesh_runtime/**/*.py"), *ROOT.glob("operator/**/*.py")]:
        text = source.read_text()
        pairs = [*DEFINITION.findall(text), *FAMILY.findall(text)]
        pairs += [(kind.capitalize(), name) for name, kind in FAMILY_ROW.findall(text)]
        for kind, name in pairs:
            if kind == "Counter" and not name.endswith("_total"):
                name += "_total"  # prometheus_client exposes counters with the suffix
            found[name] = kind.lower()
    return found


def documented_metrics() -> dict[str, str]:
    return dict(ROW.findall((ROOT / "docs" / "metrics.md").read_text()))


def test_every_metric_is_documented_once_with_its_type() -> None:
    defined = defined_metrics()
    assert len(defined) > 20, "the scan found no metrics: the pattern is broken"
    assert documented_metrics() == defined


def test_names_follow_prometheus_conventions() -> None:
    for name, kind in defined_metrics().items():
        assert name.startswith("actormesh_"), name
        assert (kind == "counter") == name.endswith("_total"), f"{name}: only counters end in _total"
        if "seconds" in name or "bytes" in name:
            assert re.search(r"_(seconds|bytes)(_total)?$", name), f"{name}: the unit goes last"
