"""The RPC methods themselves on the fakes: what they check before a use case runs (authorise and
validate before paying for a hash, base64 and size of a photo, a full hashing queue), and that each
method reaches its use case. No container, no broker: the service object gets the fake units of work."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest
from upgestao_identity.adapters.hashing_pool import HasherBusy
from upgestao_identity.service import MAX_PHOTO_BYTES, IdentityService


class CountingHasher:
    def __init__(self, inner, busy: bool = False) -> None:
        self.inner, self.busy, self.hashed = inner, busy, 0

    def hash(self, password: str) -> str:
        if self.busy:
            raise HasherBusy()
        self.hashed += 1
        return self.inner.hash(password)

    def __getattr__(self, name):
        if self.busy and name in ("verify", "verify_dummy"):
            def refuse(*args):
                raise HasherBusy()
            return refuse
        return getattr(self.inner, name)


@pytest.fixture
def service(fake):
    """``service(actor, role, busy=False)``: the identity service object acting as ``actor``."""

    def acting(actor: str | None = None, role: str | None = None, busy: bool = False) -> IdentityService:
        svc = IdentityService()
        svc._uow = lambda: fake.uow(actor, role)
        svc.identity = SimpleNamespace(hasher=CountingHasher(fake.hasher, busy), issuer=fake.issuer,
                                       settings=fake.settings, now=fake.now, today=lambda: fake.today, starting=None)
        return svc

    return acting


def body(fake, n=1, **over) -> dict:
    return {**fake.user_data(n, **over), "password": fake.password}


def test_create_user_authorises_and_validates_before_hashing(fake, service):
    admin = service(fake.admin_id, "admin")
    created = admin.create_user(body(fake))
    assert created["email"] == "ana1@example.com.br" and admin.identity.hasher.hashed == 1
    attendant = service(created["id"], "attendant")
    mark = fake.mark()
    assert fake.refused(lambda: attendant.create_user(body(fake, 2))).status == 403
    assert attendant.identity.hasher.hashed == 0 and fake.audit_since(mark)[0]["outcome"] == "denied"
    missing = fake.refused(lambda: admin.create_user({**body(fake, 3), "password": ""}))
    assert missing.extensions["errors"] == [{"field": "password", "message": "is required"}]
    weak = fake.refused(lambda: admin.create_user({**body(fake, 3), "password": "ana3 ana3 ana3"}))
    assert weak.extensions["errors"][0]["field"] == "password"
    invalid = fake.refused(lambda: admin.create_user(body(fake, 3, email="nope")))
    assert invalid.extensions["errors"][0]["field"] == "email"
    assert fake.refused(lambda: admin.create_user("not an object")).status == 422
    assert admin.identity.hasher.hashed == 1  # none of the refused ones paid for a hash
    assert fake.events_since(mark) == []


def test_me_update_me_and_the_photo_methods(fake, service):
    ana = fake.add_user(1)
    me = service(ana, "attendant")
    assert me.me()["id"] == ana
    assert me.update_me({"gender": "feminino"})["changed"] == ["gender"]
    assert fake.refused(lambda: me.set_photo(ana, "***")).extensions["errors"][0]["field"] == "photo"
    too_big = base64.b64encode(b"\0" * (MAX_PHOTO_BYTES + 1)).decode()
    assert fake.refused(lambda: me.set_photo(ana, too_big)).slug == "payload-too-large"
    assert fake.refused(lambda: me.get_photo(ana)).status == 404


def test_authentication_methods_reach_their_use_cases_and_a_full_hashing_queue_is_a_503(fake, service):
    ana = fake.add_user(1)
    anonymous = service()
    tokens = anonymous.login("ana1@example.com.br", fake.password)
    assert anonymous.refresh(tokens["refresh_token"])["session_id"] == tokens["session_id"]
    busy = fake.refused(lambda: service(busy=True).login("ana1@example.com.br", fake.password))
    assert (busy.status, busy.slug, busy.extensions) == (503, "service-busy", {"retry_after": 1})
    mine = service(ana, "attendant")
    assert [s["id"] for s in mine.list_sessions(tokens["session_id"])["items"]] == [tokens["session_id"]]
    mine.delete_session(tokens["session_id"])
    assert mine.list_sessions()["items"] == []
    anonymous.request_password_reset("ana1@example.com.br")
    assert fake.store.published("identity.password_reset_requested.v1")


def test_read_methods(fake, service):
    admin = service(fake.admin_id, "admin")
    assert admin.data_map()["items"]
    assert set(admin.role_permissions()["roles"]) == {"admin", "supervisor", "attendant", "dpo"}
    assert [r["name"] for r in admin.list_roles()["items"]] == ["admin", "attendant", "dpo", "supervisor"]
    customer = admin.create_customer({"full_name": "Carla", "email": "carla@example.com"})
    assert admin.get_customer(customer["id"])["email"] == "carla@example.com"
    assert admin.list_customers(email="carla@example.com")["items"][0]["id"] == customer["id"]
    assert admin.update_customer(customer["id"], {"gender": "f"})["gender"] == "f"
    assert [u["id"] for u in admin.list_users()["items"]] == [fake.admin_id]
    assert admin.get_user(fake.admin_id)["role"] == "admin"
