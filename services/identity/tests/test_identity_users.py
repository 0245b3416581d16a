"""Service tests of identity: users, customers, roles and authentication over real RPC."""

from __future__ import annotations

from datetime import date

import pytest
from upgestao_kernel.errors import ServiceError


def test_admin_creates_user_who_logs_in_and_reads_own_profile(identity):
    admin = identity.admin()
    created = admin.create_user(identity.user_data())
    assert created["email"] == "ana1@example.com.br" and created["role"] == "attendant"
    anon = identity.caller()
    tokens = anon.login("ANA1@example.com.br", identity.password)
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
    me = identity.caller(created["id"], "attendant").me()
    assert me["full_name"] == "Ana Souza 1" and me["address"]["city"] == "São Paulo"


def test_wrong_password_and_unknown_email_give_the_same_error(identity):
    identity.admin().create_user(identity.user_data(2))
    anon = identity.caller()
    with pytest.raises(ServiceError) as wrong:
        anon.login("ana2@example.com.br", "not the password at all")
    with pytest.raises(ServiceError) as unknown:
        anon.login("nobody@example.com.br", "not the password at all")
    assert (wrong.value.slug, wrong.value.status) == (unknown.value.slug, unknown.value.status) == (
        "invalid-credentials", 401)


def test_under_18_refused(identity):
    today = date.today()
    young = today.replace(year=today.year - 17).isoformat() if not (today.month == 2 and today.day == 29) else None
    with pytest.raises(ServiceError) as exc:
        identity.admin().create_user(identity.user_data(3, birth_date=young))
    assert exc.value.status == 422
    assert [e["field"] for e in exc.value.extensions["errors"]] == ["birth_date"]


def test_attendant_cannot_create_users(identity):
    with pytest.raises(ServiceError) as exc:
        identity.caller(identity.add_user(6)["id"], "attendant").create_user(identity.user_data(4))
    assert exc.value.status == 403


def test_refresh_rotation_and_reuse(identity):
    identity.admin().create_user(identity.user_data(5))
    anon = identity.caller()
    first = anon.login("ana5@example.com.br", identity.password)
    second = anon.refresh(first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    with pytest.raises(ServiceError):
        anon.refresh(first["refresh_token"])  # reuse: the session is revoked
    with pytest.raises(ServiceError):
        anon.refresh(second["refresh_token"])


def test_customers(identity):
    staff = identity.caller(identity.add_user(6)["id"], "attendant")
    c = staff.create_customer({"full_name": "João Lima", "email": "joao@example.com", "phone": "(21) 98765-4321"})
    assert c["phone"] == "+5521987654321"
    found = staff.search_customers({"email": "JOAO@example.com"})
    assert [i["id"] for i in found["items"]] == [c["id"]]
    with pytest.raises(ServiceError) as dup:
        staff.create_customer({"full_name": "Outro", "phone": "+55 21 98765-4321"})
    assert dup.value.status == 409
