"""`bench.cpusample`: the CPU-time stack sampler the bench can run every actor process under."""

from __future__ import annotations

import collections
import subprocess
import sys
import textwrap
from pathlib import Path

from bench.cpusample import fold, parse, shares, table

ROOT = Path(__file__).resolve().parents[2]


def test_folded_lines_round_trip_and_shares_count_a_frame_once_per_sample() -> None:
    publish = ("/x/site-packages/nats/aio/client.py", "publish")
    hand_on = ("/x/runtime/actormesh_runtime/bus/host.py", "_hand_on")
    # innermost first, as the sampler walks frames
    stacks: collections.Counter[tuple[tuple[str, str], ...]] = collections.Counter(
        {(publish, hand_on): 3, (hand_on, hand_on): 1}
    )

    lines = fold(stacks)
    counts = parse(lines)

    assert lines[0] == "runtime/actormesh_runtime/bus/host.py:_hand_on;nats/aio/client.py:publish 3"
    assert sum(counts.values()) == 4
    by_frame = {frame: (inclusive, own) for frame, inclusive, own in shares(counts)}
    assert by_frame["runtime/actormesh_runtime/bus/host.py:_hand_on"] == (1.0, 0.25)  # recursion counted once
    assert by_frame["nats/aio/client.py:publish"] == (0.75, 0.75)


def test_a_process_is_sampled_by_its_own_cpu_time(tmp_path: Path) -> None:
    """A module that burns CPU in one function and sleeps in another: the samples land in the first,
    since a timer on the process's CPU time does not run while it sleeps."""
    (tmp_path / "burner.py").write_text(
        textwrap.dedent(
            """
            import time

            def burn():
                started = time.process_time()
                while time.process_time() - started < 0.3:
                    sum(range(200))

            def rest():
                time.sleep(0.3)

            burn()
            rest()
            """
        )
    )
    out = tmp_path / "samples" / "burner.folded"
    out.parent.mkdir()
    subprocess.run(
        [sys.executable, "-m", "bench.cpusample", str(out), "burner"],
        check=True, cwd=tmp_path, env={"PYTHONPATH": f"{ROOT}:{tmp_path}", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip

    counts = parse(out.read_text().splitlines())
    # frames are named by the file's last two path parts: here the test's own temporary directory
    by_function = {frame.rsplit("/", 1)[-1]: inclusive for frame, inclusive, _ in shares(counts, top=100)}
    assert sum(counts.values()) >= 20  # 0.3 s of CPU, sampled every 1 ms asked (the kernel's tick: 4 ms here)
    assert by_function["burner.py:burn"] > 0.8
    # As long asleep as busy: a wall-clock sampler would put half its samples here. (Not none: a tick
    # that fell in burn's last instructions may be handled on entering rest.)
    assert by_function.get("burner.py:rest", 0.0) < 0.05
    assert "burner.folded" in table(out.parent)
