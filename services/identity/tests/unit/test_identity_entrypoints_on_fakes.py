"""The RPC methods themselves on the fakes: what they check before a use case runs (authorise and
validate before paying for a hash, base64 and size of a photo, a full hashing queue), and that each
method reaches its use case. No container, no broker: the service object gets the fake units of work."""

from __future__ import annotations

import base64
import io
from types import SimpleNamespace

import pytest
from PIL import Image
from upgestao_identity.adapters.hashing_pool import HasherBusy
from upgestao_identity.adapters.photo_pool import PhotoWorkers
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

    def acting(actor: str | None = None, role: str | None = None, busy: bool = False,
               context=None, photos=None) -> IdentityService:
        svc = IdentityService()
        svc._uow = lambda: fake.uow(actor, role, context=context)
        svc.identity = SimpleNamespace(hasher=CountingHasher(fake.hasher, busy), issuer=fake.issuer,
                                       settings=fake.settings, now=fake.now, today=lambda: fake.today, starting=None,
                                       photos=photos or PhotoWorkers(1, offload=lambda f, *a: f(*a)))
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
    assert admin.search_customers({"email": "carla@example.com"})["items"][0]["id"] == customer["id"]
    assert admin.search_customers({"phone": "+55 11 90000-0000", "limit": 5})["items"] == []
    assert [c["id"] for c in admin.list_customers(limit=5)["items"]] == [customer["id"]]
    with pytest.raises(TypeError):  # the criteria are no longer arguments of the listing (nor in a URL)
        admin.list_customers(email="carla@example.com")
    assert fake.refused(lambda: admin.search_customers({"limit": "5"})).extensions["errors"][0]["field"] == "limit"
    assert admin.update_customer(customer["id"], {"gender": "f"})["gender"] == "f"
    assert [u["id"] for u in admin.list_users()["items"]] == [fake.admin_id]
    assert admin.get_user(fake.admin_id)["role"] == "admin"


def test_ones_own_email_changes_only_with_the_current_password(fake, service):
    ana = fake.add_user(1, role="admin")
    me = service(ana, "admin")
    missing = fake.refused(lambda: me.update_me({"email": "ana.new@example.com.br"}))
    assert (missing.status, missing.extensions["errors"][0]["field"]) == (422, "current_password")
    mark = fake.mark()
    wrong = fake.refused(lambda: me.update_me({"email": "ana.new@example.com.br", "current_password": "nope nope"}))
    assert (wrong.status, wrong.slug, wrong.extensions["errors"][0]["field"]) == (403, "wrong-password",
                                                                                  "current_password")
    assert fake.events_since(mark) == [] and fake.audit_since(mark)[-1]["outcome"] == "denied"
    assert [r["attempts"] for r in fake.store.rows("login_budgets") if r["key"].startswith("account:")] == [1]
    # the admin route on one's own id asks the same
    assert fake.refused(lambda: me.update_user(ana, {"email": "ana.new@example.com.br"})).status == 422
    changed = me.update_me({"email": "ana.new@example.com.br", "current_password": fake.password})
    assert changed["user"]["email"] == "ana.new@example.com.br"
    assert "current_password" not in changed["changed"]
    # other fields need no password; an admin changing someone else's e-mail neither
    assert me.update_me({"gender": "f"})["changed"] == ["gender"]
    bia = fake.add_user(2)
    assert me.update_user(bia, {"email": "bia.new@example.com.br"})["changed"] == ["email"]


def test_a_notice_is_for_the_notifier_only(fake, service):
    ana = fake.add_user(1)
    service().request_password_reset("ana1@example.com.br")
    (event,) = fake.store.published("identity.password_reset_requested.v1")
    for caller in (service(fake.admin_id, "admin"), service(context=fake.context())):
        mark = fake.mark()
        refused = fake.refused(lambda caller=caller: caller.notice(event["event_id"]))
        assert (refused.status, refused.slug) == (403, "forbidden")
        (audit,) = fake.audit_since(mark)
        assert (audit["outcome"], audit["purpose"], audit["resource_type"]) == ("denied", "notification", "notice")
    notifier = service(context=fake.notifier_context())
    notice = notifier.notice(event["event_id"])
    (recipient,) = notice["recipients"]
    assert (notice["kind"], recipient["id"], recipient["to"]) == ("password_reset", ana, "ana1@example.com.br")
    assert len(fake.reset_token_of(notice)) == 43
    assert fake.refused(lambda: notifier.notice("no-such-notice")).status == 404
    fake.advance(fake.settings.reset_ttl_s + 1)
    assert fake.refused(lambda: notifier.notice(event["event_id"])).status == 404  # expired


def test_a_photo_is_sanitised_by_the_photo_workers_and_a_full_pool_is_a_503(fake, service):
    ana = fake.add_user(1)
    ran = []
    me = service(ana, "attendant", photos=PhotoWorkers(1, offload=lambda f, *a: ran.append(f) or f(*a)))
    assert me.set_photo(ana, base64.b64encode(png()).decode())["content_type"] == "image/png"
    assert [f.__name__ for f in ran] == ["sanitize_photo"]

    def occupied(f, *a):  # a second upload arrives while the only slot decodes
        assert fake.refused(lambda: me.set_photo(ana, base64.b64encode(png()).decode())).status == 503
        return f(*a)

    me = service(ana, "attendant", photos=PhotoWorkers(1, offload=occupied))
    assert me.set_photo(ana, base64.b64encode(png()).decode())["width"] > 0
    photo = base64.b64encode(png()).decode()
    mark = fake.mark()
    busy = fake.refused(lambda: service(ana, "attendant", photos=_full()).set_photo(ana, photo))
    assert (busy.status, busy.slug, busy.extensions) == (503, "service-busy", {"retry_after": 1})
    # refused before any unit of work opened: a keyed request has claimed nothing its retry would trip on
    assert fake.audit_since(mark) == [] and fake.events_since(mark) == []
    other = fake.add_user(2)
    ran.clear()
    watching = PhotoWorkers(1, offload=lambda f, *a: ran.append(f))
    refused = fake.refused(lambda: service(other, "attendant", photos=watching).set_photo(ana, photo))
    assert refused.status == 403 and ran == []  # authorised before any pixel is looked at


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 8), (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


def _full() -> PhotoWorkers:
    workers = PhotoWorkers(1, offload=lambda f, *a: f(*a))
    workers._slots.acquire()
    return workers
