"""Service tests of identity's personal-data handling over real RPC, RabbitMQ and PostgreSQL: own-profile
edits, photos, roles as data, privacy by construction (R3.1, D3) and rebuilding the read models."""

from __future__ import annotations

import base64
import io
import uuid
from datetime import date

import pytest
from kombu import Connection, Queue, binding
from PIL import Image
from upgestao_identity.adapters.projections import projections
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.leaks import LeakScanner, table_texts
from upgestao_kernel.projections import rebuild, snapshot
from upgestao_kernel.relay import OutboxRelay, drain
from upgestao_kernel.topology import audit_exchange, declare_publishing, events_exchange


def error_of(call, *args) -> ServiceError:
    with pytest.raises(ServiceError) as exc:
        call(*args)
    return exc.value


def fields_of(problem: ServiceError) -> list[str]:
    return [e["field"] for e in problem.extensions["errors"]]


def years_ago(years: int) -> str:
    today = date.today()
    return today.replace(year=today.year - years, day=min(today.day, 28)).isoformat()


def user_stream(identity, user_id: str) -> list:
    return identity.rows("SELECT version, type FROM events WHERE stream_id = :s ORDER BY version", s=f"user-{user_id}")


def users_row(identity, user_id: str):
    [row] = identity.rows("SELECT * FROM users WHERE id = :u", u=user_id)
    return row


# -- own profile -------------------------------------------------------------------------------


def test_update_me_edits_the_roles_self_editable_fields_only(identity):
    user = identity.add_user(1)
    me = identity.caller(user["id"], "attendant")
    changed = me.update_me({"phone": "(21) 99876-5432"})
    assert changed["changed"] == ["phone"] and changed["user"]["phone"] == "+5521998765432"

    before_row, before_events = users_row(identity, user["id"]), user_stream(identity, user["id"])
    for changes in ({"full_name": "Outra Pessoa"}, {"full_name": "Outra Pessoa", "phone": "+55 21 90000-1111"}):
        problem = error_of(me.update_me, changes)
        assert (problem.slug, problem.status) == ("correction-required", 403)
        assert problem.extensions["fields"] == ["full_name"]
    assert users_row(identity, user["id"]) == before_row and user_stream(identity, user["id"]) == before_events
    assert (me.me()["full_name"], me.me()["phone"]) == ("Ana Souza 1", "+5521998765432")
    denied = identity.audit(action="update", outcome="denied", subject_id=user["id"])
    assert [d["fields"] for d in denied] == [["full_name"], ["full_name"]]

    # a birth date that makes the person under 18: refused, whoever edits it
    admin = identity.add_user(2, role="admin")
    for call, args in ((identity.caller(admin["id"], "admin").update_me, ({"birth_date": years_ago(17)},)),
                       (identity.admin().update_user, (user["id"], {"birth_date": years_ago(17)}))):
        problem = error_of(call, *args)
        assert (problem.slug, problem.status, fields_of(problem)) == ("validation-error", 422, ["birth_date"])
        assert "18" in problem.extensions["errors"][0]["message"]
    assert me.me()["birth_date"] == user["birth_date"]


# -- photo -------------------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def jpeg_with_gps() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "S", (23.0, 33.0, 1.5)  # latitude
    gps[3], gps[4] = "W", (46.0, 38.0, 2.0)  # longitude
    data = encode(Image.new("RGB", (64, 48), (200, 30, 30)), "JPEG", exif=exif)
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)  # the upload really carries GPS
    return data


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def test_photo_is_stripped_of_metadata_typed_from_its_bytes_and_bounded(identity):
    user = identity.add_user(3)
    me = identity.caller(user["id"], "attendant")
    saved = me.set_photo(user["id"], b64(jpeg_with_gps()))
    assert (saved["id"], saved["content_type"], saved["width"], saved["height"]) == (user["id"], "image/jpeg", 64, 48)
    photo = me.get_photo(user["id"])
    content = base64.b64decode(photo["content_b64"])
    assert photo["content_type"] == "image/jpeg" and saved["size"] == len(content)
    assert b"Exif" not in content and b"SecretCam" not in content
    stored = Image.open(io.BytesIO(content))
    assert (stored.format, stored.size, len(stored.getexif())) == ("JPEG", (64, 48), 0)
    assert identity.admin().get_user(user["id"])["has_photo"] is True

    png = encode(Image.new("RGBA", (20, 10), (0, 90, 200, 128)), "PNG")
    # the RPC takes no content type at all: the type comes from the bytes
    assert identity.admin().set_photo(user["id"], b64(png))["content_type"] == "image/png"
    assert me.get_photo(user["id"])["content_type"] == "image/png"

    colleague = identity.caller(identity.add_user(5)["id"], "attendant")  # someone else's photo
    assert error_of(colleague.set_photo, user["id"], b64(png)).status == 403
    assert error_of(colleague.get_photo, user["id"]).status == 403

    for garbage in (b"GIF89a not really an image", b"\xff\xd8\xff" + b"\x00" * 200, b""):
        problem = error_of(me.set_photo, user["id"], b64(garbage))
        assert (problem.status, fields_of(problem)) == (422, ["photo"]), garbage[:10]
    assert fields_of(error_of(me.set_photo, user["id"], "%% not base64 %%")) == ["photo"]
    too_large = error_of(me.set_photo, user["id"], b64(b"\x89PNG\r\n\x1a\n" + b"\x00" * (2 * 1024 * 1024)))
    assert (too_large.slug, too_large.status) == ("payload-too-large", 413)
    assert me.get_photo(user["id"])["content_type"] == "image/png"  # the refused uploads changed nothing
    assert identity.rows("SELECT count(*) AS n FROM photos")[0].n == 1


# -- roles -------------------------------------------------------------------------------------------


def test_roles_are_data_an_admin_changes(identity):
    admin = identity.admin()
    built_in = {r["name"]: r for r in admin.list_roles()["items"]}
    assert sorted(built_in) == ["admin", "attendant", "dpo", "supervisor"]
    attendant_permissions = sorted(set(built_in["attendant"]["permissions"]) - {"customers.update"})

    updated = admin.update_role("attendant", attendant_permissions, ["phone"])
    assert (updated["permissions"], updated["self_editable_fields"]) == (attendant_permissions, ["phone"])
    assert [b["data"] for b in identity.published("identity.role_permissions_changed.v1")] == [{"role": "attendant"}]
    assert admin.role_permissions()["roles"]["attendant"] == attendant_permissions
    assert admin.update_role("attendant", attendant_permissions, ["phone"]) == updated  # no change, no event
    assert len(identity.published("identity.role_permissions_changed.v1")) == 1

    user = identity.add_user(4)  # the change applies at once, to the next request
    staff = identity.caller(user["id"], "attendant")
    customer = staff.create_customer({"full_name": "Cliente Um", "phone": "+55 11 95555-0001"})
    assert error_of(staff.update_customer, customer["id"], {"full_name": "Cliente Dois"}).status == 403
    assert error_of(staff.update_me, {"address": None}).slug == "correction-required"

    admin_permissions = built_in["admin"]["permissions"]
    for name, permissions, editable, field, named in (
        ("supervisor", [*built_in["supervisor"]["permissions"], "audit.read"], [], "permissions", "audit.read"),
        ("attendant", [*attendant_permissions, "users.fly"], [], "permissions", "users.fly"),
        ("attendant", attendant_permissions, ["shoe_size"], "self_editable_fields", "shoe_size"),
    ):
        problem = error_of(admin.update_role, name, permissions, editable)
        assert (problem.status, fields_of(problem)) == (422, [field]), (name, permissions, editable)
        assert named in problem.extensions["errors"][0]["message"]
    assert error_of(admin.update_role, "auditor", [], []).status == 404
    own = error_of(admin.update_role, "admin", [*admin_permissions, "audit.read"], [])  # separation of duties
    assert (own.status, own.slug) == (403, "forbidden")
    refused = admin.role_permissions()["roles"]
    assert (refused["admin"], refused["attendant"]) == (admin_permissions, attendant_permissions)

    watcher = identity.add_user(5)
    identity.assign_role(watcher["id"], "dpo")  # the system's act: an admin gives no compliance role
    dpo = identity.caller(watcher["id"], "dpo")
    assert len(dpo.list_roles()["items"]) == 4  # dpo may read roles ...
    problem = error_of(dpo.update_role, "dpo", [*built_in["dpo"]["permissions"], "roles.update"], [])  # ... not change
    assert (problem.slug, problem.status) == ("forbidden", 403)
    assert error_of(staff.list_roles).status == 403
    assert [a["resource_id"] for a in identity.audit(resource_type="role", outcome="denied", action="update")] == [
        "admin", "dpo"]
    changed = identity.audit(resource_type="role", outcome="success", action="update")
    assert [(a["resource_id"], a["purpose"]) for a in changed] == [
        ("attendant", "role attendant changed: added [], removed [customers.update]")]
    assert admin.role_permissions()["roles"]["dpo"] == built_in["dpo"]["permissions"]


# -- privacy by construction ---------------------------------------------------------------------


NAME, EMAIL, PHONE, PHONE_E164 = "Benedita Quintanilha", "benedita.q@example.org", "+55 31 98877-6655", "+5531988776655"
NEW_PHONE, NEW_PHONE_E164 = "+55 31 97654-3210", "+5531976543210"
BIRTH_DATE = years_ago(37)
STREET, POSTAL_CODE = "Travessa dos Ipês Amarelos", "30130-110"
SECRET, WRONG_SECRET = "Our-Secret-Passphrase-77", "Wrong-Secret-Passphrase-88"
C_NAME, C_EMAIL, C_PHONE, C_PHONE_E164 = "Genoveva Albuquerque", "genoveva.a@example.net", "(41) 97766-5544", \
    "+5541977665544"
C_BIRTH_DATE, C_STREET, C_POSTAL_CODE = "1975-03-09", "Alameda Jaborandi", "80010-020"
C_NEW_EMAIL = "genoveva.nova@example.net"

# each in every form it may take (escaped, case-folded, E.164 or punctuated, ISO or dd/mm/yyyy): upgestao_kernel.leaks
PERSONAL_VALUES = (NAME, EMAIL, PHONE, NEW_PHONE, BIRTH_DATE, STREET, POSTAL_CODE, C_NAME, C_EMAIL, C_PHONE,
                   C_BIRTH_DATE, C_STREET, C_POSTAL_CODE, C_NEW_EMAIL, SECRET, WRONG_SECRET)


def address(street: str, postal_code: str, city: str = "Belo Horizonte", state: str = "MG") -> dict:
    return {"street": street, "number": "42", "complement": "apto 3", "district": "Funcionários", "city": city,
            "state": state, "postal_code": postal_code}


def scenario(identity) -> dict:
    """Create, update, read and list a user and a customer, log in and fail to, be denied; returns the ids
    and the request id of each step."""
    rid = {step: f"req-{step}-{uuid.uuid4().hex[:8]}" for step in (
        "create", "update", "read", "list", "customer_create", "customer_read", "customer_search",
        "customer_update", "login_ok", "login_failed", "denied", "update_me", "me")}
    user = identity.admin(rid["create"]).create_user(identity.user_data(
        7, full_name=NAME, email=EMAIL, phone=PHONE, birth_date=BIRTH_DATE, address=address(STREET, POSTAL_CODE),
        gender="feminino", password=SECRET))
    uid = user["id"]

    def staff(step: str):
        return identity.caller(uid, "attendant", request_id=rid[step])

    customer = staff("customer_create").create_customer({
        "full_name": C_NAME, "email": C_EMAIL, "phone": C_PHONE, "birth_date": C_BIRTH_DATE,
        "address": address(C_STREET, C_POSTAL_CODE, "Curitiba", "PR")})
    cid = customer["id"]
    identity.admin(rid["update"]).update_user(uid, {"phone": NEW_PHONE, "job_title": "Supervisora"})
    assert identity.admin(rid["read"]).get_user(uid)["full_name"] == NAME
    # the harness's first admin (a real user: identity re-reads every actor), then her
    assert [u["email"] for u in identity.admin(rid["list"]).list_users()["items"]] == [identity.admin_email, EMAIL]
    assert staff("customer_read").get_customer(cid)["email"] == C_EMAIL
    assert [c["id"] for c in staff("customer_search").search_customers({"email": C_EMAIL})["items"]] == [cid]
    staff("customer_update").update_customer(cid, {"email": C_NEW_EMAIL})
    session = identity.caller(request_id=rid["login_ok"]).login(EMAIL, SECRET)
    with pytest.raises(ServiceError):
        identity.caller(request_id=rid["login_failed"]).login(EMAIL, WRONG_SECRET)
    with pytest.raises(ServiceError):
        staff("denied").create_user(identity.user_data(8, password=SECRET))
    staff("update_me").update_me({"address": address(STREET, POSTAL_CODE, "Contagem")})
    assert staff("me").me()["address"]["city"] == "Contagem"
    return {"user_id": uid, "customer_id": cid, "session": session, "rid": rid}


def published_messages(identity) -> list[tuple[str, str]]:
    """Relay identity's whole outbox to the broker and read back every message (body and headers) from a
    queue bound to the audit exchange and identity's events."""
    tap = Queue(f"test.tap.{uuid.uuid4().hex[:8]}", bindings=[binding(audit_exchange(), routing_key="#"),
                                                            binding(events_exchange("identity"), routing_key="#")],
                durable=False, auto_delete=False)
    uri = identity.config["AMQP_URI"]
    with Connection(uri) as conn:
        declare_publishing(conn.default_channel, ["identity"])
        tap(conn.default_channel).declare()
    relay = OutboxRelay(identity.engine, uri, services=["identity"])
    try:
        published = drain(relay)
    finally:
        relay.close()
    messages: list[tuple[str, str]] = []
    with Connection(uri) as conn:
        bound = tap(conn.default_channel)
        while (message := bound.get(no_ack=True)) is not None:
            messages += [(f"broker body {len(messages)}", message.body),
                         (f"broker headers {len(messages)}", message.headers)]
        bound.delete()
    assert published and len(messages) == 2 * published, (published, len(messages))
    return messages


def test_no_personal_value_leaves_the_vault_and_every_access_is_audited(identity):
    ids = scenario(identity)
    uid, cid, rid = ids["user_id"], ids["customer_id"], ids["rid"]

    scanner = LeakScanner(PERSONAL_VALUES)
    for source in (table_texts(identity.engine, "events"), table_texts(identity.engine, "outbox"),
                   published_messages(identity)):  # the audit records among them, on the wire too
        assert len(source) >= 10
        scanner.assert_clean(source)

    def one(step: str, **match) -> dict:
        found = identity.audit(request_id=rid[step], **match)
        assert len(found) == 1, (step, match, identity.audit(request_id=rid[step]))
        return found[0]

    admin_id = identity.admin_id
    created = one("create", action="create", resource_type="user")
    assert (created["subject_id"], created["actor_id"], created["outcome"]) == (uid, admin_id, "success")
    assert created["fields"] == ["address", "birth_date", "email", "full_name", "gender", "job_title", "phone"]
    credential = one("create", action="create", resource_type="credential")  # the password is stored too
    assert (credential["subject_id"], credential["fields"]) == (uid, ["password"])
    assert one("update", action="update")["fields"] == ["job_title", "phone"]
    read = one("read", action="read")
    assert (read["subject_id"], read["actor_id"], read["actor_role"]) == (uid, admin_id, "admin")
    assert "full_name" in read["fields"] and "email" in read["fields"]
    assert one("list", action="list", subject_id=uid)["resource_type"] == "user"

    customer_created = one("customer_create", action="create")
    assert (customer_created["resource_type"], customer_created["subject_id"], customer_created["actor_id"]) == (
        "customer", cid, uid)
    assert customer_created["fields"] == ["address", "birth_date", "email", "full_name", "phone"]
    assert one("customer_read", action="read")["subject_id"] == cid
    assert one("customer_search", action="list")["subject_id"] == cid
    assert one("customer_update", action="update")["fields"] == ["email"]

    login = one("login_ok", action="login")
    assert (login["outcome"], login["subject_id"], login["resource_id"]) == ("success", uid,
                                                                             ids["session"]["session_id"])
    failed = one("login_failed", action="login")
    assert (failed["outcome"], failed["subject_id"], failed["actor_id"]) == ("failure", uid, None)
    denied = one("denied")
    assert (denied["action"], denied["outcome"], denied["actor_id"], denied["actor_role"]) == (
        "create", "denied", uid, "attendant")
    assert one("update_me", action="update")["fields"] == ["address"]
    assert one("me", action="read")["subject_id"] == uid

    rows = identity.outbox(exchange="audit")
    start_up = [r.body for r in rows if r.body["actor_id"] == "system"]  # the harness's first admin, created
    assert {(a["action"], a["subject_id"], a["source_ip"]) for a in start_up} == {
        ("create", identity.admin_id, None)}  # by the system: from no network
    for row in rows:  # the context travels as headers too
        assert row.headers.get("nameko.request_id") == row.body["request_id"]
        if row.body["actor_id"] != "system":
            assert row.body["source_ip"] == "203.0.113.0/24"  # the network, never the address (kernel audit)
        assert set(row.body) >= {"audit_id", "actor_id", "action", "subject_id", "fields", "purpose", "outcome"}


# -- rebuild -------------------------------------------------------------------------------------------


def test_rebuild_gives_back_identical_read_models(identity):
    ids = scenario(identity)
    uid, anon, admin = ids["user_id"], identity.caller(), identity.admin()
    other = identity.add_user(9)
    anon.refresh(ids["session"]["refresh_token"])
    spare = anon.login(other["email"], identity.password)
    identity.caller(other["id"], "attendant").set_photo(other["id"], b64(jpeg_with_gps()))
    identity.caller(other["id"], "attendant").logout(spare["session_id"])
    anon.login(other["email"], identity.password)
    anon.request_password_reset(other["email"])
    anon.confirm_password_reset(identity.reset_token(other["id"]), "the reset passphrase")
    admin.update_user(uid, {"role": "supervisor"})
    admin.update_role("dpo", ["profile.read", "roles.read", "audit.read"], ["phone"])
    admin.update_customer(ids["customer_id"], {"phone": None})
    admin.deactivate_user(other["id"])

    live = projections()
    with identity.engine.connect() as conn:
        before = snapshot(conn, live)
    assert all(before[t] for t in ("users", "customers", "roles", "sessions", "password_resets"))
    assert rebuild(identity.engine, projections()) == identity.rows("SELECT count(*) AS n FROM events")[0].n
    with identity.engine.connect() as conn:
        assert snapshot(conn, live) == before
