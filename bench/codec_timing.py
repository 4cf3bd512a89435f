"""`python -m bench.codec_timing OUT.json MODULE [ARGS...]`: run MODULE as `__main__` and write what
its hop codec cost: the thread CPU time of every envelope decode and encode (`Envelope.from_bytes`,
`Envelope.to_bytes`; in a relay hop process, its `json.loads` and `json.dumps`), summed.

Microbenchmarks of the codec (the bench's "per-call codec costs") run one call after another on hot
caches; in a running chain of a dozen processes on two cores each process wakes for one message after
the others ran, and the same call costs several times as much (docs/benchmarks.md, "The codec in the
chain"). This measures it where it happens. Used by `processes.Children` when BENCH_CODEC_DIR is set;
`python -m bench.codec_timing --table DIR` prints what the processes wrote.
"""

from __future__ import annotations

import atexit
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .wrapped import run_as_main

_clock = time.thread_time_ns


class _Tally:
    def __init__(self) -> None:
        self.ns = {"decode": 0, "encode": 0}
        self.calls = {"decode": 0, "encode": 0}
        self.decoded_bytes = 0

    def timed(self, kind: str, call: Callable[..., Any], min_bytes: int = 0) -> Callable[..., Any]:
        """`call`, its thread CPU time added to `kind`; calls on (or giving) under `min_bytes` uncounted."""

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = _clock()
            result = call(*args, **kwargs)
            spent = _clock() - started
            payload = args[-1] if kind == "decode" else result
            size = len(payload) if isinstance(payload, bytes | str) else 0
            if size >= min_bytes:
                self.ns[kind] += spent
                self.calls[kind] += 1
                if kind == "decode":
                    self.decoded_bytes += size
            return result

        return wrapper

    def summary(self, process: str) -> dict[str, Any]:
        row: dict[str, Any] = {"process": process}
        for kind in ("decode", "encode"):
            calls = self.calls[kind]
            row[f"{kind}s"] = calls
            row[f"{kind}_us"] = round(self.ns[kind] / calls / 1000, 1) if calls else None
        decodes = self.calls["decode"]
        row["decoded_bytes"] = round(self.decoded_bytes / decodes) if decodes else None
        return row


def _instrument(module: str, tally: _Tally) -> None:
    if module == "bench.relay":
        # runpy runs the hop's code in a fresh namespace, whose `import json` finds the json module:
        # so the module's functions are wrapped, counting only payload-sized calls (nats-py decodes
        # each PubAck with the same json.loads; those are tens of bytes).
        json.loads = tally.timed("decode", json.loads, min_bytes=1000)
        json.dumps = tally.timed("encode", json.dumps, min_bytes=1000)
        return
    from actormesh_runtime.envelope import Envelope

    decode, encode = Envelope.from_bytes, Envelope.to_bytes
    Envelope.from_bytes = tally.timed("decode", decode)  # type: ignore[method-assign]
    Envelope.to_bytes = tally.timed("encode", encode)  # type: ignore[method-assign]


def table(directory: Path) -> str:
    rows = [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]
    lines = [f"{'process':32} {'decodes':>8} {'decode us':>10} {'encodes':>8} {'encode us':>10} {'bytes':>6}"]
    for r in rows:
        lines.append(
            f"{r['process']:32} {r['decodes']:>8} {r['decode_us'] or '-':>10} {r['encodes']:>8}"
            f" {r['encode_us'] or '-':>10} {r['decoded_bytes'] or '-':>6}"
        )
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1] == "--table":
        print(table(Path(sys.argv[2])))
        return
    out, module, *args = sys.argv[1:]
    tally = _Tally()
    _instrument(module, tally)
    atexit.register(lambda: Path(out).write_text(json.dumps(tally.summary(Path(out).stem))))
    run_as_main(module, args)


if __name__ == "__main__":
    main()
