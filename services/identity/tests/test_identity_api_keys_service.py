"""API keys (issue 15) on the running service (RabbitMQ, PostgreSQL, the migrations): an admin issues a key
shown once, the gateway's broker user alone exchanges it for a token of the key's principal, the key acts at
identity with its scopes only and is audited as the actor, and a revocation is published as the revocation
of the key's "session"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from upgestao_kernel.errors import ServiceError


def refused(call) -> ServiceError:
    with pytest.raises(ServiceError) as raised:
        call()
    return raised.value


def test_a_key_is_issued_exchanged_by_the_gateway_alone_and_revoked(identity):
    admin = identity.admin()
    expires_at = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    created = admin.create_api_key({"name": "Phone system", "scopes": ["customers.read", "customers.list"],
                                    "expires_at": expires_at.isoformat()})
    key, key_id = created["key"], created["id"]
    assert key.startswith(f"upk_{key_id}_") and created["expires_at"] == expires_at.isoformat()
    (row,) = identity.rows("SELECT secret_hash, status, scopes FROM api_keys WHERE id = :id", id=key_id)
    assert row.status == "active" and row.scopes == ["customers.list", "customers.read"] and key not in row.secret_hash
    assert not [r for r in identity.outbox() if key in str(r.body)]  # the key is in no event, no audit record
    assert [k["id"] for k in admin.api_keys()["items"]] == [key_id] and "key" not in admin.api_key(key_id)

    # only the gateway's broker user exchanges a key (anyone else: 403, audited)
    for caller in (identity.as_service("messaging"), identity.caller(identity.admin_id, "admin")):
        assert refused(lambda c=caller: c.exchange_api_key(key)).status == 403
    assert identity.audit(resource_type="api_key", action="login", outcome="denied")
    answer = identity.as_service("gateway").exchange_api_key(key)
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert (claims["sub"], claims["sid"], claims["role"]) == (key_id, key_id, f"apikey:{key_id}")
    assert admin.api_key(key_id)["last_used_at"] is not None
    roles = identity.caller().role_permissions()["roles"]
    assert roles[f"apikey:{key_id}"] == ["customers.list", "customers.read"]

    # the key acts at identity with exactly its scopes, audited as itself
    customer = admin.create_customer({"full_name": "Carla Dias", "email": "carla@example.com"})
    as_key = identity.caller(access_token=answer["access_token"])
    assert as_key.get_customer(customer["id"])["id"] == customer["id"]
    read = [a for a in identity.audit(resource_type="customer", action="read") if a["actor_id"] == key_id]
    assert read and read[-1]["actor_role"] == f"apikey:{key_id}"
    assert refused(lambda: as_key.create_customer({"full_name": "Dora"})).status == 403
    assert refused(lambda: as_key.create_api_key({"name": "x", "scopes": ["customers.read"]})).status == 403

    # revoked: at once, published as the key's session revocation; the key is refused, its token too
    assert admin.revoke_api_key(key_id) == {"id": key_id, "revoked": True}
    (revocation,) = [b for b in identity.published("identity.session_revoked.v1")
                     if b["data"]["session_id"] == key_id]
    assert revocation["data"]["reason"] == "api_key_revoked"
    assert identity.published("identity.api_key_revoked.v1")[-1]["data"]["key_id"] == key_id
    assert refused(lambda: identity.as_service("gateway").exchange_api_key(key)).status == 401
    assert refused(lambda: as_key.get_customer(customer["id"])).status == 403
    assert f"apikey:{key_id}" not in identity.caller().role_permissions()["roles"]
    assert admin.api_key(key_id)["status"] == "revoked"


def test_the_rules_of_a_key_are_identitys(identity):
    admin = identity.admin()
    attendant = identity.add_user(1)
    as_attendant = identity.caller(attendant["id"], "attendant")
    assert refused(lambda: as_attendant.create_api_key({"name": "x", "scopes": ["customers.read"]})).status == 403
    for data, field in (({"name": "x", "scopes": ["integrations.manage"]}, "scopes"),
                        ({"name": "x", "scopes": ["privacy.review"]}, "scopes"),
                        ({"name": "x", "scopes": ["customers.read"],
                          "expires_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()}, "expires_at")):
        answer = refused(lambda d=data: admin.create_api_key(d))
        assert answer.status == 422 and answer.extensions["errors"][0]["field"] == field
    unknown = "upk_0b5c6a52-3f0e-4a8e-9a57-1c1d2e3f4a5b_" + "A" * 43
    gateway = identity.as_service("gateway")
    answers = {(e.status, e.slug, e.detail) for e in (refused(lambda: gateway.exchange_api_key(unknown)),
                                                      refused(lambda: gateway.exchange_api_key("upk_nonsense")))}
    assert len(answers) == 1 and next(iter(answers))[0] == 401
    assert refused(lambda: admin.revoke_api_key("0b5c6a52-3f0e-4a8e-9a57-1c1d2e3f4a5b")).status == 404
