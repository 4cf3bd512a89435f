"""Auth on by default: what starts, which tokens verify (rotation, iss, aud), and `actormesh dev`'s choice."""

from __future__ import annotations

import time

import jwt
import pytest
from pydantic import ValidationError

from actormesh_runtime.cli import describe_settings_error
from actormesh_runtime.commands.dev import choose_auth, is_loopback
from actormesh_runtime.gateway.app import create_app
from actormesh_runtime.gateway.auth import (
    AuthError,
    AuthNotConfigured,
    TokenVerifier,
    bearer_from_subprotocols,
    mint_token,
)
from actormesh_runtime.gateway.inflight import InFlight, LimitReached
from actormesh_runtime.settings import RuntimeSettings

KEY = "k" * 32
OLD = "o" * 40
EMAIL = "john.doe@example.com"


def settings(**values: object) -> RuntimeSettings:
    return RuntimeSettings(nats_url="nats://127.0.0.1:1", **values)  # type: ignore[arg-type]


def test_no_key_and_no_anonymous_mode_refuses_to_build_the_app() -> None:
    with pytest.raises(AuthNotConfigured) as refused:
        create_app(settings())
    assert "JWT_SECRET" in str(refused.value)
    assert "GATEWAY_ANONYMOUS=true" in str(refused.value)
    assert create_app(settings(gateway_anonymous=True)).state.token_verifier is None
    assert create_app(settings(jwt_secret=KEY)).state.token_verifier is not None
    # Both set: the key wins, auth stays on.
    assert create_app(settings(jwt_secret=KEY, gateway_anonymous=True)).state.token_verifier is not None


@pytest.mark.parametrize("field", ["jwt_secret", "jwt_previous_secret"])
def test_short_keys_are_refused_without_echoing_them(field: str) -> None:
    short = "twenty-one-byte-key!!"
    with pytest.raises(ValidationError) as refused:
        settings(**{"jwt_secret": KEY, field: short})
    message = describe_settings_error(refused.value)
    assert field.upper() in message
    assert "21 bytes" in message
    assert short not in message
    settings(**{field: "x" * 32})  # exactly 32 bytes is enough
    # Bytes, not characters: 16 two-byte characters are 32 bytes.
    settings(jwt_secret="é" * 16)


def test_previous_key_verifies_during_rotation_and_only_then() -> None:
    rotating = TokenVerifier.from_settings(settings(jwt_secret=KEY, jwt_previous_secret=OLD))
    assert rotating is not None
    assert rotating.verify(mint_token(OLD, EMAIL)).email == EMAIL
    assert rotating.verify(mint_token(KEY, EMAIL)).email == EMAIL
    with pytest.raises(AuthError):
        rotating.verify(mint_token("z" * 32, EMAIL))
    after = TokenVerifier.from_settings(settings(jwt_secret=KEY))
    assert after is not None
    with pytest.raises(AuthError) as refused:
        after.verify(mint_token(OLD, EMAIL))
    assert refused.value.status == 401
    # An expired token signed with the old key says "expired", not "bad signature".
    with pytest.raises(AuthError, match="expired"):
        rotating.verify(mint_token(OLD, EMAIL, ttl_s=-120))


@pytest.mark.parametrize(
    ("claims", "ok"),
    [
        pytest.param({"iss": "shop", "aud": "gw"}, True, id="both-right"),
        pytest.param({"aud": "gw"}, False, id="no-iss"),
        pytest.param({"iss": "evil", "aud": "gw"}, False, id="wrong-iss"),
        pytest.param({"iss": "shop"}, False, id="no-aud"),
        pytest.param({"iss": "shop", "aud": "other"}, False, id="wrong-aud"),
        pytest.param({"iss": "shop", "aud": ["other", "gw"]}, True, id="aud-list"),
    ],
)
def test_issuer_and_audience_are_required_when_configured(claims: dict[str, object], ok: bool) -> None:
    verifier = TokenVerifier.from_settings(settings(jwt_secret=KEY, jwt_issuer="shop", jwt_audience="gw"))
    assert verifier is not None
    token = jwt.encode({"sub": EMAIL, "exp": time.time() + 60, **claims}, KEY, algorithm="HS256")
    if ok:
        principal = verifier.verify(token)
        assert principal.email == EMAIL
        assert principal.expires_at is not None
    else:
        with pytest.raises(AuthError) as refused:
            verifier.verify(token)
        assert refused.value.status == 401


def test_without_configured_audience_a_token_with_one_still_verifies() -> None:
    verifier = TokenVerifier([KEY])
    assert verifier.verify(mint_token(KEY, EMAIL, audience="anything")).email == EMAIL


def test_token_from_subprotocols() -> None:
    assert bearer_from_subprotocols(["actormesh.v1", "actormesh.bearer.abc.def.ghi"]) == "abc.def.ghi"
    assert bearer_from_subprotocols(["actormesh.v1"]) is None
    assert bearer_from_subprotocols(["actormesh.bearer."]) is None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("shop.example", False)],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_dev_chooses_anonymous_only_on_loopback_or_when_asked() -> None:
    local = choose_auth(settings(host="127.0.0.1"), anonymous_flag=False)
    assert isinstance(local, RuntimeSettings)
    assert local.gateway_anonymous
    refused = choose_auth(settings(host="0.0.0.0"), anonymous_flag=False)
    assert isinstance(refused, str)
    assert "--anonymous" in refused
    assert "JWT_SECRET" in refused
    asked = choose_auth(settings(host="0.0.0.0"), anonymous_flag=True)
    assert isinstance(asked, RuntimeSettings)
    assert asked.gateway_anonymous
    keyed = choose_auth(settings(host="0.0.0.0", jwt_secret=KEY), anonymous_flag=False)
    assert isinstance(keyed, RuntimeSettings)
    assert not keyed.gateway_anonymous


def test_in_flight_slots_are_capped_per_key_and_released_once() -> None:
    counter = InFlight(2)
    first, second = counter.acquire("a"), counter.acquire("a")
    counter.acquire("b")
    with pytest.raises(LimitReached):
        counter.acquire("a")
    first.release()
    first.release()  # twice counts once
    third = counter.acquire("a")
    with pytest.raises(LimitReached):
        counter.acquire("a")
    for slot in (second, third):
        slot.release()
    assert "a" not in counter.counts, "no entry is kept for a customer with nothing in flight"
