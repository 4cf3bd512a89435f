"""The operator bench's plot: time to all children and to observedGeneration vs meshes created at once.

One line pair per results file (e.g. before and after a change). matplotlib is a dev dependency; it is
imported here only, with the non-interactive Agg backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def series(results: Mapping[str, Any]) -> dict[str, list[float]]:
    """x (meshes per burst) and the y values plotted, from one results document (pure)."""
    # A burst that did not finish (the old operator's deadlock at 50 meshes) has no times to plot.
    bursts = sorted(
        (b for b in results["bursts"] if b.get("completed_observed", b["meshes"]) >= b["meshes"]),
        key=lambda b: b["meshes"],
    )
    return {
        "meshes": [b["meshes"] for b in bursts],
        "children_p50": [b["children"]["p50_s"] for b in bursts],
        "children_max": [b["children"]["max_s"] for b in bursts],
        "observed_max": [b["observed"]["max_s"] for b in bursts],
        "cpu_s": [b["cpu_s"] for b in bursts],
    }


def write_plot(documents: Sequence[tuple[str, Mapping[str, Any]]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, results in documents:
        s = series(results)
        left.plot(s["meshes"], s["observed_max"], marker="o", label=f"{label}: all observedGeneration")
        left.plot(s["meshes"], s["children_p50"], marker="s", linestyle="--", label=f"{label}: children p50")
        right.plot(s["meshes"], s["cpu_s"], marker="o", label=label)
    left.set_xlabel("meshes created at once")
    left.set_ylabel("seconds after create")
    left.set_title("Operator: time to children and status")
    right.set_xlabel("meshes created at once")
    right.set_ylabel("operator CPU seconds (burst)")
    right.set_title("Operator CPU per burst")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
