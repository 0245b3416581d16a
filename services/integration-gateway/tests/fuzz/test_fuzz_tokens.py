"""Fuzzing access-token parsing (``verify_access_token``, ``JwtAuthenticator.authenticate``).

Random strings, mutated genuine tokens, tokens with arbitrary headers and claims (signed with the
right key or not) and arbitrary ``Authorization`` headers: the only outcomes are the claims of a
genuine token or the documented 401 ``invalid_token`` (detail expired or invalid; a malformed
header is 401 ``invalid_request``), each within a time and memory budget.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fuzzing import MiB, bounded, fuzz
from hypothesis import example, given
from hypothesis import strategies as st
from upgestao_gateway.access.tokens import (
    AUDIENCE,
    EXPIRED,
    INVALID,
    ISSUER,
    AccessClaims,
    JwtAuthenticator,
    verify_access_token,
)
from upgestao_gateway.domain.principal import Principal
from upgestao_gateway.entrypoints.http.problems import Problem
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

KID = "key-1"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
NOW = int(time.time())


def key_for(kid: str):
    assert isinstance(kid, str) and kid, f"key_for called with {kid!r}"
    return KEY.public_key() if kid == KID else None


def claims(**over: Any) -> dict[str, Any]:
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "sid": "sess-1", "role": "admin",
            "iat": NOW, "exp": NOW + 900, "jti": "t-1"}
    base.update(over)
    return {key: value for key, value in base.items() if value is not None}


GENUINE = jwt.encode(claims(), KEY, algorithm="EdDSA", headers={"kid": KID})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


json_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**70), max_value=2**70)
                | st.floats() | st.text(max_size=12))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
claim_values = st.one_of(json_values, st.sampled_from([NOW, NOW + 900, NOW - 10_000, NOW + 10**6, 2**63, -(2**63),
                                                       10**20, 1e20, float(NOW + 900), "1700000000", True]))
header_values = st.one_of(json_values, st.sampled_from(["EdDSA", "HS256", "none", "RS256", "ES256", KID, "JWT"]))


@st.composite
def crafted_tokens(draw) -> str:
    """A token built segment by segment: header and claims drawn near the real ones, signed with the
    right key, another key, or not at all; segments that are not even base64 or JSON now and then."""
    header = {"alg": "EdDSA", "kid": KID, "typ": "JWT"}
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from(["alg", "kid", "typ", "crit", "b64", "jku", "x5u", "jwk", "zip"]))
        header[key] = draw(header_values)
    payload = claims()
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(["iss", "aud", "sub", "sid", "role", "iat", "exp", "nbf", "jti"]))
        if draw(st.integers(0, 3)) == 0:
            payload.pop(key, None)
        else:
            payload[key] = draw(claim_values)
    header_json = json.dumps(header).encode() if draw(st.integers(0, 9)) else draw(st.binary(max_size=20))
    payload_json = json.dumps(payload).encode() if draw(st.integers(0, 9)) else draw(st.binary(max_size=20))
    signing_input = f"{b64url(header_json)}.{b64url(payload_json)}"
    signer = draw(st.sampled_from(["right", "other", "none", "garbage"]))
    if signer == "right":
        signature = b64url(KEY.sign(signing_input.encode()))
    elif signer == "other":
        signature = b64url(OTHER_KEY.sign(signing_input.encode()))
    elif signer == "none":
        signature = ""
    else:
        signature = draw(st.text(alphabet="ABCxyz019-_=+/. ", max_size=90))
    return f"{signing_input}.{signature}"


@st.composite
def mutated_tokens(draw) -> str:
    """The genuine token with characters flipped, cut, inserted, or its segments shuffled."""
    token = list(GENUINE)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(token) - 1))
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        if kind == "flip":
            token[at] = draw(st.sampled_from("AZaz09-_.=+/ \x00é"))
        elif kind == "cut":
            del token[at:]
        elif kind == "insert":
            token[at:at] = draw(st.text(max_size=4))
        else:
            del token[at]
        if not token:
            token = ["."]
    text = "".join(token)
    if draw(st.booleans()):
        parts = text.split(".")
        text = ".".join(draw(st.permutations(parts)))
    return text


any_tokens = st.one_of(st.text(max_size=300), mutated_tokens(), crafted_tokens(),
                       st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.",
                               max_size=400))


def verify(token: str) -> AccessClaims | None:
    """The claims of ``token``, or None after checking the refusal is the documented one."""
    with bounded("verify_access_token", seconds=0.5, memory=16 * MiB):
        try:
            result = verify_access_token(token, key_for)
        except Problem as problem:
            assert problem.status == 401
            assert problem.detail in (EXPIRED, INVALID)
            assert problem.headers["WWW-Authenticate"] == 'Bearer realm="upgestao", error="invalid_token"'
            return None
    assert isinstance(result, AccessClaims)
    return result


@fuzz
@given(any_tokens)
@example(GENUINE)
@example(jwt.encode(claims(exp=10**20), KEY, algorithm="EdDSA", headers={"kid": KID}))
@example(jwt.encode(claims(exp=1e20), KEY, algorithm="EdDSA", headers={"kid": KID}))
@example(jwt.encode(claims(exp=2**63), KEY, algorithm="EdDSA", headers={"kid": KID}))
def test_any_token_gives_claims_or_the_documented_rejection(token):
    result = verify(token)
    if result is not None:  # accepted: then it is signed by the key, and its claims are well-formed
        header, payload = jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})
        assert header["alg"] == "EdDSA" and header["kid"] == KID
        assert payload["iss"] == ISSUER and payload["aud"] in (AUDIENCE, [AUDIENCE])
        assert (result.subject, result.session_id, result.role) == (payload["sub"], payload["sid"], payload["role"])
        assert all(isinstance(value, str) and value for value in (result.subject, result.session_id, result.role))
        assert result.expires_at.timestamp() + 30 >= time.time()


@fuzz
@given(mutated_tokens())
def test_a_changed_genuine_token_is_never_accepted_with_other_claims(token):
    result = verify(token)
    if result is not None:  # base64 padding-insensitive changes may survive, the claims may not change
        assert (result.subject, result.session_id, result.role) == ("user-1", "sess-1", "admin")


class _Keys:
    def key_for(self, kid: str):
        return key_for(kid)


class _Permissions:
    def of(self, role: str) -> frozenset[str]:
        return frozenset({"users.read"}) if role == "admin" else frozenset()


class _Revocations:
    def wait_current(self, timeout_s: float) -> bool:
        return True

    def is_revoked(self, session_id: str) -> bool:
        return session_id == "revoked"


AUTHENTICATOR = JwtAuthenticator(_Keys(), _Permissions(), _Revocations())

header_texts = st.one_of(
    any_tokens.map(lambda token: f"Bearer {token}"),
    st.tuples(st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "Bearer ", "Token", ""]),
              st.sampled_from(["", " ", "  ", "\t"]), any_tokens).map("".join),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=100),
).map(lambda value: value.replace("\r", " ").replace("\n", " "))  # (no HTTP server passes a header line break on)


@fuzz
@given(header_texts)
@example(f"Bearer {GENUINE}")
@example("Bearer " + "A" * 100_000)
def test_any_authorization_header_gives_a_principal_none_or_a_401(value):
    request = Request(EnvironBuilder(path="/", headers={"Authorization": value}).get_environ())
    with bounded("authenticate", seconds=0.5, memory=16 * MiB):
        try:
            principal = AUTHENTICATOR.authenticate(request)
        except Problem as problem:
            assert problem.status == 401
            assert problem.headers["WWW-Authenticate"] in ('Bearer realm="upgestao", error="invalid_token"',
                                                           'Bearer realm="upgestao", error="invalid_request"')
            return
    assert principal is None or isinstance(principal, Principal)
    if value == f"Bearer {GENUINE}":
        assert principal is not None and principal.actor_id == "user-1"
