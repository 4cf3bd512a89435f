"""Where the mesh's per-message CPU time goes: cProfile over one bounded mesh run, grouped.

Everything in the measured process (the hosts and the driver; the mock APIs run in a process of
their own) runs in one event loop on one thread, so tottime summed by library is that library's
share of the CPU per message. cProfile inflates call-heavy code (pydantic-core calls count once, pure-Python
libraries count per call), so read shares, not absolute microseconds.
"""

from __future__ import annotations

import cProfile
import pstats
from typing import Any

CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("mock APIs (uvicorn/starlette/fastapi)", ("uvicorn", "starlette", "fastapi", "h11", "httptools",
                                               "actormesh_runtime/mocks")),
    ("httpx/httpcore client", ("httpx", "httpcore", "anyio", "sniffio")),
    ("aiohttp client", ("aiohttp", "yarl", "multidict", "aiohappyeyeballs", "propcache")),
    ("pydantic", ("pydantic",)),
    ("nats-py client", ("/nats/",)),
    ("vaderSentiment", ("vaderSentiment",)),
    ("prometheus_client", ("prometheus_client",)),
    ("logging", ("logging/",)),
    ("json (stdlib)", ("json/",)),
    ("re (stdlib + C)", ("re/", "_sre", "re.py", "sre_")),
    ("asyncio event loop", ("asyncio/", "selector", "uvloop", "socket")),
    ("actormesh bus (host/publish)", ("actormesh_runtime/bus",)),
    ("actormesh actors + policy", ("actormesh_runtime/actors", "actormesh_runtime/policy",
                                   "actormesh_runtime/clients", "actormesh_runtime/storage",
                                   "actormesh_runtime/replies", "actormesh_runtime/envelope",
                                   "actormesh_runtime/screening")),
    ("benchmark driver", ("/bench/",)),
)  # fmt: skip


def categorise(filename: str, funcname: str) -> str:
    where = f"{filename}:{funcname}"
    for label, needles in CATEGORIES:
        if any(n in where for n in needles):
            return label
    if filename == "~":
        # Built-ins: attribute by the builtin's own name.
        if "pydantic" in funcname or "validate" in funcname or "model_dump" in funcname:
            return "pydantic"
        if "_json" in funcname or "json" in funcname:
            return "json (stdlib)"
        if "re.Pattern" in funcname or "_sre" in funcname:
            return "re (stdlib + C)"
        if "select" in funcname or "epoll" in funcname:
            return "asyncio event loop (idle wait)"
        return "builtins (other)"
    return "other"


def summarise(profile: cProfile.Profile, messages: int, top: int = 30) -> dict[str, Any]:
    stats = pstats.Stats(profile)
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    by_category: dict[str, float] = {}
    rows = []
    total = 0.0
    for (filename, line, func), (_cc, ncalls, tottime, cumtime, _callers) in raw.items():
        category = categorise(filename, func)
        by_category[category] = by_category.get(category, 0.0) + tottime
        if category != "asyncio event loop (idle wait)":
            total += tottime
        rows.append((tottime, cumtime, ncalls, f"{_short(filename)}:{line}({func})"))
    rows.sort(reverse=True)
    per_msg = max(messages, 1)
    categories = {
        name: {"total_s": round(secs, 3), "us_per_msg": round(secs / per_msg * 1e6, 1),
               "share": round(secs / total, 3) if total and "idle" not in name else None}
        for name, secs in sorted(by_category.items(), key=lambda kv: -kv[1])
    }  # fmt: skip
    cumulative = sorted(
        ((cum, f"{_short(fn)}:{ln}({f})") for (fn, ln, f), (_c, _n, _t, cum, _) in raw.items()),
        reverse=True,
    )
    return {
        "messages": messages,
        "busy_cpu_s": round(total, 3),
        "busy_us_per_msg": round(total / per_msg * 1e6, 1),
        "categories": categories,
        "top_tottime": [
            {"tottime_s": round(t, 4), "cumtime_s": round(c, 4), "calls": n, "function": name}
            for t, c, n, name in rows[:top]
        ],
        "top_cumulative": [{"cumtime_s": round(c, 4), "function": name} for c, name in cumulative[:top]],
    }


def _short(filename: str) -> str:
    for marker in ("site-packages/", "runtime/", "lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename
