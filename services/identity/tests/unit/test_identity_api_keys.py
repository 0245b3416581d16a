"""API keys (issue 15) on the fakes: the key's shape and hash, the scope rules, the aggregate, and the use
cases (issue, list, revoke, exchange, the role-permissions document, a key acting at identity)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from upgestao_identity.domain import api_keys as domain
from upgestao_identity.domain.api_keys import ApiKey, ApiKeyRefused
from upgestao_identity.domain.errors import RoleNotFound
from upgestao_identity.domain.roles import BUILT_IN_ROLES, COMPLIANCE_PERMISSIONS, PERMISSIONS, check_role_definition
from upgestao_identity.service_layer import api_keys, customers, roles
from upgestao_kernel.events import utcnow

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
ATTENDANT = frozenset(BUILT_IN_ROLES["attendant"]["permissions"])
ADMIN = frozenset(BUILT_IN_ROLES["admin"]["permissions"])


# -- the key ------------------------------------------------------------------------------------


def test_a_key_carries_its_id_and_32_random_bytes_and_only_its_hash_matches():
    key_id = "0b5c6a52-3f0e-4a8e-9a57-1c1d2e3f4a5b"
    key, other = domain.new_key(key_id), domain.new_key(key_id)
    assert key.startswith(f"upk_{key_id}_") and len(key) == len("upk_") + 36 + 1 + 43 and key != other
    assert domain.key_id_of(key) == key_id
    stored = domain.key_hash(key)
    assert len(stored) == 64 and key not in stored
    assert domain.hash_matches(key, stored) and not domain.hash_matches(other, stored)
    assert not domain.hash_matches(key, "")


_ID = "0b5c6a52-3f0e-4a8e-9a57-1c1d2e3f4a5b"


@pytest.mark.parametrize("malformed", [
    None, 42, "", "upk_", f"upk_{_ID}", "upk_not-an-id_" + "a" * 43, f"upk_{_ID}_" + "a" * 42,
    f"upk_{_ID}_" + "a" * 44, f"upk_{_ID}_" + "a" * 42 + "=", f"pk_{_ID}_" + "a" * 43,
    f"upk_{_ID.upper()}_" + "a" * 43, f"upk_{_ID}_" + "a" * 43 + "\n", f"upk_{_ID}_" + "a" * 42 + "+",
])
def test_a_malformed_key_names_no_id(malformed):
    assert domain.key_id_of(malformed) is None


def test_a_key_role_names_its_key_and_no_real_role_can_take_that_name():
    key_id = "0b5c6a52-3f0e-4a8e-9a57-1c1d2e3f4a5b"
    assert domain.role_of(key_id) == f"apikey:{key_id}" and domain.key_id_of_role(f"apikey:{key_id}") == key_id
    assert domain.key_id_of_role("admin") is None and domain.key_id_of_role("apikey:x") is None
    assert domain.key_id_of_role(None) is None
    with pytest.raises(RoleNotFound):
        check_role_definition(f"apikey:{key_id}", ["customers.read"], [])


# -- scopes, name and expiry -------------------------------------------------------------------


def test_scopes_are_sorted_unique_grantable_permissions_the_creator_holds():
    assert domain.checked_scopes(["customers.read", "conversations.record_incoming", "customers.read"],
                                 ATTENDANT) == ["conversations.record_incoming", "customers.read"]
    for required in ("conversations.record_incoming", "conversations.read", "conversations.write", "customers.read",
                     "customers.list", "customers.create", "customers.update"):
        assert required in domain.GRANTABLE_SCOPES and domain.checked_scopes([required], ADMIN) == [required]


@pytest.mark.parametrize(("scopes", "held", "says"), [
    ([], ADMIN, "at least one"),
    ("customers.read", ADMIN, "at least one"),
    (None, ADMIN, "at least one"),
    (["customers.read", 7], ADMIN, "unknown permission"),
    (["customers.delete"], ADMIN, "unknown permission"),
    (["integrations.manage"], ADMIN, "cannot be granted"),
    (["roles.update"], ADMIN, "cannot be granted"),
    (["users.create"], ADMIN, "cannot be granted"),
    (["teams.manage"], ADMIN, "cannot be granted"),
    (["audit.read"], frozenset(PERMISSIONS), "cannot be granted"),
    (["conversations.read_all"], ATTENDANT, "your role does not hold conversations.read_all"),
])
def test_a_scope_refused_names_scopes(scopes, held, says):
    with pytest.raises(ApiKeyRefused) as refused:
        domain.checked_scopes(scopes, held)
    assert refused.value.field == "scopes" and says in refused.value.message


def test_no_compliance_permission_nor_management_permission_is_grantable():
    assert not set(domain.GRANTABLE_SCOPES) & set(COMPLIANCE_PERMISSIONS)
    assert not [s for s in domain.GRANTABLE_SCOPES if s.split(".")[0] in ("users", "roles", "integrations")]
    assert set(domain.GRANTABLE_SCOPES) <= set(PERMISSIONS)


def test_an_expiry_is_in_the_future_and_at_most_a_year_ahead():
    assert domain.checked_expiry(None, NOW) is None
    assert domain.checked_expiry(NOW + timedelta(days=365), NOW) == NOW + timedelta(days=365)
    for bad, says in ((NOW, "future"), (NOW - timedelta(seconds=1), "future"),
                      (NOW + timedelta(days=365, seconds=1), "a year"), (datetime(2026, 6, 1), "time zone")):
        with pytest.raises(ApiKeyRefused) as refused:
            domain.checked_expiry(bad, NOW)
        assert refused.value.field == "expires_at" and says in refused.value.message


@pytest.mark.parametrize("name", [None, "", "   ", "x" * 101, "tab\there", 5])
def test_a_name_is_required_short_and_printable(name):
    with pytest.raises(ApiKeyRefused) as refused:
        domain.checked_name(name)
    assert refused.value.field == "name"


# -- the aggregate -----------------------------------------------------------------------------


def test_a_revoked_key_is_revoked_once_and_its_session_with_it():
    key = ApiKey.create("k1", name="CRM", scopes=["customers.read"], expires_at=NOW + timedelta(days=1),
                        created_by="u1", secret_hash="h")
    assert key.usable(NOW) and not key.usable(NOW + timedelta(days=1))
    assert key.revoke("u1") and not key.revoke("u1")
    assert [e.type for e in key.collect()] == ["identity.api_key_created.v1", "identity.api_key_revoked.v1",
                                                "identity.session_revoked.v1"]
    assert not key.usable(NOW)


def test_what_the_key_events_publish_holds_no_hash_and_no_name():
    key = ApiKey.create("k1", name="CRM", scopes=["customers.read"], expires_at=None, created_by="u1",
                        secret_hash="h" * 64)
    key.revoke("u2")
    created, revoked, session = key.collect()
    assert created.published == {"key_id": "k1", "scopes": ["customers.read"], "expires_at": None,
                                 "created_by": "u1"}
    assert revoked.published == {"key_id": "k1", "revoked_by": "u2"}
    assert session.published == {"session_id": "k1", "user_id": None, "reason": "api_key_revoked"}


# -- the use cases -----------------------------------------------------------------------------


def _exchange(fake, key, service="gateway"):
    with fake.uow(context=fake.service_context(service)) as uow:
        return api_keys.exchange(uow, fake.issuer, key, now=fake.now())


def test_an_admin_issues_a_key_shown_once_and_stored_as_its_hash(fake):
    mark = fake.mark()
    created = fake.run(api_keys.create, {"name": "Phone system", "scopes": ["conversations.record_incoming"],
                                         "expires_at": (fake.now() + timedelta(days=30)).isoformat()}, now=fake.now())
    key = created.pop("key")
    assert created == {**created, "name": "Phone system", "scopes": ["conversations.record_incoming"],
                       "status": "active", "created_by": fake.admin_id, "last_used_at": None, "revoked_at": None}
    assert domain.key_id_of(key) == created["id"]
    row = fake.row("api_keys", created["id"])
    assert row["secret_hash"] == domain.key_hash(key)
    assert key not in repr(fake.store.events) and key not in repr(fake.store.outbox)
    (record,) = fake.audit_since(mark, resource_type="api_key")
    assert (record["action"], record["resource_id"], record["outcome"]) == ("create", created["id"], "success")
    listed = fake.run(api_keys.list_page, 50, None)
    assert [k["id"] for k in listed["items"]] == [created["id"]] and "key" not in listed["items"][0]
    assert fake.run(api_keys.get, created["id"]) == created


def test_only_integrations_manage_issues_and_a_creator_grants_only_what_their_role_holds(fake):
    attendant = fake.add_user(1)
    refusal = fake.refused(lambda: fake.run(api_keys.create, {"name": "x", "scopes": ["customers.read"]},
                                            actor=attendant, role="attendant", now=fake.now()))
    assert refusal.status == 403
    for data, field in (({"name": "x", "scopes": ["users.read"]}, "scopes"),
                        ({"name": "x", "scopes": ["audit.read"]}, "scopes"),
                        ({"name": "x", "scopes": ["customers.read"], "expires_at": "yesterday"}, "expires_at"),
                        ({"name": "x", "scopes": ["customers.read"],
                          "expires_at": (fake.now() + timedelta(days=400)).isoformat()}, "expires_at"),
                        ({"name": "", "scopes": ["customers.read"]}, "name"),
                        ({"name": "x", "scopes": ["customers.read"], "owner": "me"}, "owner")):
        refusal = fake.refused(lambda data=data: fake.run(api_keys.create, data, now=fake.now()))
        assert refusal.status == 422 and refusal.extensions["errors"][0]["field"] == field, data
    assert fake.store.rows("api_keys") == []


def test_the_gateway_exchanges_a_key_for_a_token_of_the_keys_principal(fake):
    created = fake.run(api_keys.create, {"name": "CRM", "scopes": ["customers.read", "customers.list"]},
                       now=fake.now())
    answer = _exchange(fake, created["key"])
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    role = f"apikey:{created['id']}"
    assert (claims["sub"], claims["sid"], claims["role"]) == (created["id"], created["id"], role)
    assert claims["exp"] - claims["iat"] == fake.issuer.access_ttl_s == answer["expires_in"]
    assert (answer["key_id"], answer["role"], answer["scopes"]) == (created["id"], role,
                                                                    ["customers.list", "customers.read"])
    assert fake.run(api_keys.get, created["id"])["last_used_at"] == fake.now().isoformat()
    (used,) = fake.audit_since((0, 0), action="login", resource_type="api_key")
    assert (used["resource_id"], used["outcome"], used["subject_id"]) == (created["id"], "success", None)
    # the document every gateway and service caches lists the key's role with exactly its scopes
    document = fake.run(roles.permissions_by_role)["roles"]
    assert document[role] == ["customers.list", "customers.read"] and "admin" in document


def test_a_key_expiring_soon_gets_a_token_that_dies_with_it(fake):
    created = fake.run(api_keys.create, {"name": "CRM", "scopes": ["customers.read"],
                                         "expires_at": (fake.now() + timedelta(seconds=120)).isoformat()},
                       now=fake.now())
    answer = _exchange(fake, created["key"])
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert answer["expires_in"] <= 120 and claims["exp"] <= int((fake.now() + timedelta(seconds=120)).timestamp())
    fake.advance(120)
    assert fake.refused(lambda: _exchange(fake, created["key"])).status == 401


def test_last_used_moves_at_most_once_a_minute(fake):
    created = fake.run(api_keys.create, {"name": "CRM", "scopes": ["customers.read"]}, now=fake.now())
    first = fake.now()
    _exchange(fake, created["key"])
    fake.advance(59)
    _exchange(fake, created["key"])
    assert fake.run(api_keys.get, created["id"])["last_used_at"] == first.isoformat()
    fake.advance(1)
    _exchange(fake, created["key"])
    assert fake.run(api_keys.get, created["id"])["last_used_at"] == fake.now().isoformat()


def test_an_unknown_revoked_expired_or_wrong_key_gets_one_answer(fake):
    created = fake.run(api_keys.create, {"name": "CRM", "scopes": ["customers.read"]}, now=fake.now())
    key = created["key"]
    forged = key[:-5] + ("AAAAA" if not key.endswith("AAAAA") else "BBBBB")
    unknown = domain.new_key("0b5c6a52-3f0e-4a8e-9a57-1c1d2e3f4a5b")
    answers = [fake.refused(lambda k=k: _exchange(fake, k)) for k in (forged, unknown, "upk_nonsense", None)]
    fake.run(api_keys.revoke, created["id"])
    answers.append(fake.refused(lambda: _exchange(fake, key)))
    assert {(a.status, a.slug, a.detail) for a in answers} == {(401, "invalid-api-key", api_keys.invalid_key().detail)}
    refusals = [(r["resource_id"], r["purpose"].removeprefix("API key refused: "))
                for r in fake.audit_since((0, 0), action="login", resource_type="api_key", outcome="denied")]
    assert refusals == [(created["id"], "wrong secret"), *[(None, "unknown or malformed")] * 3,
                        (created["id"], "revoked")]


def test_only_the_gateway_may_exchange_a_key(fake):
    created = fake.run(api_keys.create, {"name": "CRM", "scopes": ["customers.read"]}, now=fake.now())
    mark = fake.mark()
    for service in ("messaging", "privacy", None):
        assert fake.refused(lambda s=service: _exchange(fake, created["key"], s)).status == 403
    assert len(fake.audit_since(mark, resource_type="api_key", outcome="denied")) == 3
    assert fake.run(api_keys.get, created["id"])["last_used_at"] is None


def test_revoking_records_a_session_revocation_of_the_key_id_and_drops_its_role(fake):
    created = fake.run(api_keys.create, {"name": "CRM", "scopes": ["customers.read"]}, now=fake.now())
    mark = fake.mark()
    assert fake.run(api_keys.revoke, created["id"]) == {"id": created["id"], "revoked": True}
    assert fake.run(api_keys.revoke, created["id"]) == {"id": created["id"], "revoked": False}
    (revoked,) = fake.published_since(mark, "identity.session_revoked.v1")
    assert revoked["data"] == {"session_id": created["id"], "user_id": None, "reason": "api_key_revoked"}
    assert [b["data"]["key_id"] for b in fake.published_since(mark, "identity.api_key_revoked.v1")] == [created["id"]]
    assert fake.run(api_keys.get, created["id"])["status"] == "revoked"
    assert f"apikey:{created['id']}" not in fake.run(roles.permissions_by_role)["roles"]
    assert fake.refused(lambda: fake.run(api_keys.revoke, "0b5c6a52-3f0e-4a8e-9a57-1c1d2e3f4a5b")).status == 404


def test_a_key_acts_at_identity_with_its_scopes_only_while_usable(fake):
    customer = fake.run(customers.register, {"full_name": "Carla", "email": "carla@example.com"}, today=fake.today)
    created = fake.run(api_keys.create, {"name": "CRM", "scopes": ["customers.read"]}, now=utcnow())
    key_id, role = created["id"], f"apikey:{created['id']}"
    mark = fake.mark()
    assert fake.run(customers.get, customer["id"], actor=key_id, role=role)["id"] == customer["id"]
    (read,) = fake.audit_since(mark, action="read", resource_type="customer")
    assert (read["actor_id"], read["actor_role"]) == (key_id, role)
    refusal = fake.refused(lambda: fake.run(customers.register, {"full_name": "Dora"}, actor=key_id, role=role,
                                            today=fake.today))
    assert refusal.status == 403  # customers.create is not among its scopes
    # a token naming another key's role, or an admin's role for the key, grants nothing
    other = fake.run(api_keys.create, {"name": "Other", "scopes": ["customers.read"]}, now=utcnow())
    assert fake.refused(lambda: fake.run(customers.get, customer["id"], actor=key_id,
                                         role=f"apikey:{other['id']}")).status == 403
    fake.run(api_keys.revoke, key_id)
    assert fake.refused(lambda: fake.run(customers.get, customer["id"], actor=key_id, role=role)).status == 403
    assert fake.refused(lambda: fake.run(api_keys.create, {"name": "x", "scopes": ["customers.read"]},
                                         actor=other["id"], role=f"apikey:{other['id']}", now=utcnow())).status == 403
