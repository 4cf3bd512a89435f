"""The gateway's OpenAPI document tells the truth: schemathesis, every check, against a live gateway
on a real mesh (nats-server, the nine actors, the history service) finds nothing.

What it covers: every status code and body the gateway answers is documented (the custom 422
`ErrorBody` included), every request the schema allows is accepted, every request it forbids is
refused. Its only setting, with its reason, is tests/contract/schemathesis.toml; its one hook,
tests/contract/hooks.py, gives different generated requests different `Idempotency-Key`s (a key
reused for another request is refused on purpose, which a schema cannot say).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from actormesh_runtime.gateway.auth import mint_token
from tests.conftest import missing_component
from tests.support.gateway import gateway_stack, stack_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

CONFIG = Path(__file__).resolve().parents[1] / "contract" / "schemathesis.toml"
HOOKS = CONFIG.with_name("hooks.py")
SEED = 20261205
EXAMPLES = 60
SECRET = "contract-test-secret-" + "x" * 20


def schemathesis_cli() -> Path:
    cli = Path(sys.executable).parent / "st"
    if not cli.exists():
        missing_component("schemathesis", "pip install -e '.[dev]' (it is a dev dependency)")
    return cli


@pytest.mark.parametrize(
    "auth",
    [
        pytest.param(False, id="anonymous"),
        # Auth on, as a customer: every agent API operation must answer its documented 403, and the
        # customer routes check the token's subject (another customer's email or session: 403).
        pytest.param(True, id="customer-token"),
    ],
)
async def test_schemathesis_with_every_check_finds_nothing(
    nats_server: str, tmp_path: Path, auth: bool
) -> None:
    cli = schemathesis_cli()
    settings = stack_settings(
        nats_server, tmp_path, gateway_anonymous=not auth, jwt_secret=SECRET if auth else None
    )
    headers = (
        ["--header", f"Authorization: Bearer {mint_token(SECRET, 'john.doe@example.com')}"] if auth else []
    )
    async with gateway_stack(settings) as stack:
        process = await asyncio.create_subprocess_exec(
            str(cli), "--config-file", str(CONFIG), "run", f"{stack.url}/openapi.json",
            "--checks", "all", "--max-examples", str(EXAMPLES), "--seed", str(SEED),
            "--request-timeout", "40", "--workers", "1", *headers,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
        )  # fmt: skip
        output, _ = await process.communicate()
    report = output.decode(errors="replace")
    assert process.returncode == 0, report[-8000:]
    assert "15 passed" in report, report[-3000:]
