"""Who asks, from proof only (issue 11, finding 1): unit tests of the verifier, the context built from a
request's data, and the caller taken from the broker-checked ``user_id``."""

from __future__ import annotations

import json
from types import SimpleNamespace

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from upgestao_kernel.access_tokens import EXPIRED, INVALID, InvalidAccessToken, TokenVerifier
from upgestao_kernel.config import ConfigError
from upgestao_kernel.context import RequestContext
from upgestao_kernel.jwks import parse_jwks, pinned_jwks
from upgestao_kernel.nameko_ext.principals import Principals, request_context, stamp_caller
from upgestao_kernel.testing_tokens import TEST_KID, signed_token, token_jwks, token_jwks_json


def _principals() -> Principals:
    return Principals(parse_jwks(token_jwks()))


def _worker(data: dict, entrypoint=None):
    return SimpleNamespace(context_data=data, entrypoint=entrypoint or SimpleNamespace())


def test_the_actor_is_whoever_the_token_names_whatever_the_headers_say():
    data = {"access_token": signed_token("user-1", "attendant"), "actor_id": "someone-else", "actor_role": "admin",
            "request_id": "req-00000001"}
    ctx = request_context(_worker(data), _principals())
    assert (ctx.actor_id, ctx.actor_role, ctx.request_id) == ("user-1", "attendant", "req-00000001")


@pytest.mark.parametrize("data", [
    {"actor_id": "system", "actor_role": "system"},
    {"actor_id": "u-1", "actor_role": "admin"},
    {"actor_id": "u-1", "actor_role": "dpo", "access_token": "not.a.token"},
])
def test_headers_without_a_valid_token_are_nobody(data):
    ctx = request_context(_worker(dict(data)), _principals())
    assert ctx.actor_id is None and ctx.actor_role is None


def test_a_token_signed_by_another_key_or_claiming_system_is_refused():
    claims = jwt.decode(signed_token("u-1", "admin"), options={"verify_signature": False})
    forged = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": TEST_KID})
    verifier = _principals().verifier
    with pytest.raises(InvalidAccessToken) as refused:
        verifier.verify(forged)
    assert refused.value.reason == INVALID
    with pytest.raises(InvalidAccessToken):
        verifier.verify(signed_token("system", "system"))
    with pytest.raises(InvalidAccessToken) as refused:
        verifier.verify(signed_token("u-1", "admin", ttl_s=-120))
    assert refused.value.reason == EXPIRED


def test_a_verified_token_is_cached_but_its_expiry_still_checked():
    now = [1_000_000.0]
    calls = []
    keys = parse_jwks(token_jwks())

    def key_for(kid):
        calls.append(kid)
        return keys.get(kid)

    token = signed_token("u-1", "admin", ttl_s=60)
    verifier = TokenVerifier(key_for, clock=lambda: now[0])
    claims = verifier.verify(token)
    now[0] = claims.expires_at.timestamp() + 31
    with pytest.raises(InvalidAccessToken) as refused:
        verifier.verify(token)
    assert refused.value.reason == EXPIRED


def test_an_in_process_entrypoint_that_verified_itself_is_trusted():
    data = {"actor_id": "u-9", "actor_role": "admin", "request_id": "req-00000002"}
    ctx = request_context(_worker(data, SimpleNamespace(trusted_context=True)), None)
    assert (ctx.actor_id, ctx.actor_role) == ("u-9", "admin")


def test_an_event_handler_acts_as_the_system():
    data = {"actor_id": "u-9", "actor_role": "attendant", "request_id": "req-00000003"}
    ctx = request_context(_worker(data, SimpleNamespace(acts_as_system=True)), _principals())
    assert (ctx.actor_id, ctx.actor_role, ctx.correlation_id) == ("system", "system", "req-00000003")


def test_the_caller_is_the_broker_user_never_a_header():
    message = SimpleNamespace(properties={"user_id": "upgestao.notifier"})
    assert stamp_caller({"caller_service": "identity"}, message) == {"caller_service": "notifier"}
    assert stamp_caller({"caller_service": "identity"}, SimpleNamespace(properties={"user_id": "guest"})) == {}
    assert stamp_caller({"caller_service": "identity"}, SimpleNamespace(properties={})) == {}


def test_ids_and_addresses_from_a_message_are_checked():
    ctx = RequestContext.from_proof({"request_id": "x" * 500, "source_ip": "Maria Silva",
                                     "correlation_id": "<script>"}, None, None)
    assert len(ctx.request_id) == 36 and ctx.source_ip is None and ctx.correlation_id == ctx.request_id
    assert RequestContext.from_proof({"source_ip": "2001:db8::1"}, None, None).source_ip == "2001:db8::1"
    # at most what an event's correlation_id keeps (64): a longer one was a 500 on every write to PostgreSQL
    assert RequestContext.from_proof({"request_id": "r" * 64}, None, None).request_id == "r" * 64
    assert len(RequestContext.from_proof({"request_id": "r" * 65}, None, None).request_id) == 36
    assert "caller_service" not in RequestContext.from_proof({}, None, "identity").to_context_data()


def test_pinned_keys_are_required_in_production_and_checked(tmp_path):
    with pytest.raises(ConfigError, match="required in production"):
        pinned_jwks({}, production=True)
    assert pinned_jwks({}, production=False) is None
    assert set(pinned_jwks({"UPGESTAO_IDENTITY_JWKS": token_jwks_json()}, production=True)) == {TEST_KID}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(token_jwks()))
    assert set(pinned_jwks({"UPGESTAO_IDENTITY_JWKS": str(path)}, production=True)) == {TEST_KID}
    with pytest.raises(ConfigError, match="not a valid JWKS"):
        pinned_jwks({"UPGESTAO_IDENTITY_JWKS": '{"keys": [{"kty": "OKP", "crv": "Ed25519", "d": "x"}]}'},
                    production=False)


def test_own_keys_are_trusted_beside_the_pin():
    other = Ed25519PrivateKey.generate()
    principals = Principals(parse_jwks(token_jwks()))
    principals.trust({"own": other.public_key()})
    assert principals.key_for("own") is not None and principals.key_for(TEST_KID) is not None
    assert principals.key_for("nobody") is None
