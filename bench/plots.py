"""The benchmark's plots (PNG, matplotlib), written from the results dict by `python -m bench`.

One figure per layout: throughput, p50, p99 and CPU per message by in-flight level, every target
of that layout as one line, from the median over the repeats. The machine, loop and load go in the
title, so a plot copied into the docs still says what it measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .machine import describe
from .report import median_levels

LAYOUTS = {
    "one-process": ("mesh-one-process.png", "one process (actormesh dev)"),
    "processes": ("mesh-process-per-actor.png", "one process per actor (or group) / per relay hop"),
}


def _layout(target: str) -> str:
    return "processes" if target.endswith(("-mp", "-groups")) else "one-process"


def write_plots(results: dict[str, Any], directory: Path) -> list[Path]:
    """Write one PNG per layout that has results; return their paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    med = median_levels(results)
    written = []
    for layout, (filename, title) in LAYOUTS.items():
        targets = sorted({t for t, _ in med if _layout(t) == layout})
        if not targets:
            continue
        fig, axes = plt.subplots(1, 4, figsize=(19, 4.6))
        panels = (
            ("msgs_per_s", "throughput (msg/s)"),
            ("p50_ms", "p50 latency (ms)"),
            ("p99_ms", "p99 latency (ms)"),
            ("cpu_ms_per_msg", "CPU per message (ms, without nats-server)"),
        )
        for ax, (key, label) in zip(axes, panels, strict=True):
            for target in targets:
                levels = sorted(c for t, c in med if t == target)
                style = "--" if target.startswith("relay") else "-"
                ax.plot(levels, [med[(target, c)][key] for c in levels], style, marker="o", label=target)
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted({c for _, c in med}), labels=[str(c) for c in sorted({c for _, c in med})])
            ax.set_xlabel("messages in flight")
            ax.set_title(label)
            ax.grid(True, alpha=0.3)
        axes[0].legend()
        machine = describe(results["machine"]) if "machine" in results else ""
        load = results.get("load_avg_before", [0.0])[0], results.get("load_avg_after", [0.0])[0]
        fig.suptitle(
            f"ActorMesh vs bare JetStream relay, {title}; median of {len(results['repeats'])} runs\n"
            f"{machine}; {results.get('event_loop', '')}; load average {load[0]:.1f} before, "
            f"{load[1]:.1f} after",
            fontsize=10,
        )
        fig.tight_layout()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / filename
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
