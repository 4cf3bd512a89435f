"""The actor registry builds every actor by name, lazily, with the (deps) constructor convention."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from actormesh_runtime.actors.registry import ACTOR_CLASSES, build_actor
from actormesh_runtime.catalog import ACTORS_BY_NAME, ActorName
from actormesh_runtime.settings import RuntimeSettings
from tests.support.envelopes import make_deps

MINE = [
    ActorName.SENTIMENT_ANALYZER,
    ActorName.INTENT_ANALYZER,
    ActorName.RESPONSE_GENERATOR,
    ActorName.GUARDRAIL_VALIDATOR,
    ActorName.ESCALATION_ROUTER,
    ActorName.RESPONSE_AGGREGATOR,
]


def test_every_actor_is_registered() -> None:
    assert set(ACTOR_CLASSES) == set(ActorName)


@pytest.mark.parametrize("name", list(ActorName), ids=lambda n: n.value)
def test_build_actor(name: ActorName) -> None:
    actor = build_actor(name.value, make_deps())
    assert actor.name is name


def test_unknown_name() -> None:
    with pytest.raises(ValueError):
        build_actor("not_an_actor", make_deps())


@pytest.mark.parametrize("name", MINE, ids=lambda n: n.value)
def test_building_a_non_llm_actor_never_imports_litellm(name: ActorName) -> None:
    code = (
        "import sys\n"
        "from actormesh_runtime.actors.registry import build_actor\n"
        "from actormesh_runtime.resources import ActorDeps\n"
        "from actormesh_runtime.settings import RuntimeSettings\n"
        f"build_actor('{name.value}', ActorDeps(settings=RuntimeSettings(), publisher=None))\n"
        "print('litellm' in sys.modules)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "LITELLM_MODEL": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", list(ActorName), ids=lambda n: n.value)
async def test_catalog_flags_match_the_clients_each_actor_opens(name: ActorName) -> None:
    # The operator gives exactly the flagged actors the LLM, commerce-API and Redis settings and the
    # egress rules that go with them: a wrong flag either breaks that path in a cluster or opens
    # egress for an actor that never needs it. So the flags are checked against what the actor opens.
    info = ACTORS_BY_NAME[name]
    with_llm = make_deps(RuntimeSettings(mesh_name="unit", litellm_model="test/model"))
    build_actor(name.value, with_llm)  # LLM actors take the process's client when they are built
    assert ("llm_client" in with_llm.extras) is info.uses_llm

    deps = make_deps(RuntimeSettings(mesh_name="unit", litellm_model=""))
    actor = build_actor(name.value, deps)
    await actor.start()
    try:
        opened = set(deps.extras)
    finally:
        await actor.stop()
    assert ("commerce_client" in opened) is info.calls_commerce_apis
    assert ("context_cache" in opened) is info.uses_redis
    assert deps.extras == {}, "stop() releases what start() acquired"


def test_the_actor_command_path_imports_no_web_framework_and_no_litellm() -> None:
    # What `actormesh actor NAME` imports: the command module, the process host, then one actor.
    # Modules accumulate in one interpreter, so the first actor that pulls in a heavy package is named.
    code = (
        "import json, sys\n"
        "from actormesh_runtime.cli import _load\n"
        "_load('actor')\n"
        "from actormesh_runtime.bus.process import default_factory\n"
        "from actormesh_runtime.resources import ActorDeps\n"
        "from actormesh_runtime.catalog import ActorName\n"
        "from actormesh_runtime.settings import RuntimeSettings\n"
        "heavy = {'litellm', 'openai', 'fastapi', 'starlette', 'uvicorn', 'aiosqlite', 'jwt'}\n"
        "seen = {}\n"
        "for name in ActorName:\n"
        "    default_factory(name, ActorDeps(settings=RuntimeSettings(), publisher=None))\n"
        "    seen[name.value] = sorted({m.split('.')[0] for m in sys.modules} & heavy)\n"
        "print(json.dumps(seen))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "LITELLM_MODEL": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    seen = json.loads(out.stdout)
    assert set(seen) == {a.value for a in ActorName}
    assert {name: mods for name, mods in seen.items() if mods} == {}
