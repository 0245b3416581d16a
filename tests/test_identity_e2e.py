"""Identity end to end through the gateway, every service running as a process
(R1.1, R1.2, R2.1, R3.1, R8.1, D3): accounts, own profile, corrections, minimum
age, lockout, refresh rotation, revocation at the gateway, photos."""

from __future__ import annotations

import io
import time
import uuid

import pytest
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, Api, staff_payload, today_in_brazil, years_before
from PIL import Image
from upgestao_kernel.testing import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def api(platform):
    return Api(platform.url)


@pytest.fixture(scope="module")
def admin(api):
    return api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]


def problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"].endswith("/" + slug), body
    return body


def test_admin_creates_an_attendant_who_reads_and_edits_own_profile(api, admin):
    """R1.1, R2.1: the attendant sees and edits their own profile within their role's fields."""
    payload = staff_payload("attendant")
    created = api.post("/v1/users", admin, json=payload)
    assert created.status_code == 201, created.text
    user = created.json()
    assert created.headers["Location"] == f"/v1/users/{user['id']}"
    assert set(user) >= {"id", "full_name", "email", "phone", "birth_date", "address", "job_title", "gender",
                         "role", "status", "created_at"}
    assert "password" not in user and user["status"] == "active" and user["role"] == "attendant"
    assert user["phone"].startswith("+5511")

    tokens = api.tokens(payload["email"])
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
    me = api.get("/v1/me", tokens["access_token"])
    assert me.status_code == 200 and me.json()["email"] == payload["email"]

    edited = api.patch("/v1/me", tokens["access_token"], json={"phone": "+55 21 99876-5432",
                                                               "address": {**payload["address"], "number": "7"}})
    assert edited.status_code == 200, edited.text
    assert edited.json()["phone"] == "+5521998765432" and edited.json()["address"]["number"] == "7"


def test_a_long_request_id_is_replaced_never_a_500_on_a_write(api, admin):
    """A client's X-Request-ID is kept when an event can keep it (at most 64 characters), else replaced by one
    the gateway mints: a 100-character id was a 500 on every write to PostgreSQL (events.correlation_id)."""
    for request_id, kept in (("r" * 64, True), ("r" * 100, False)):
        created = api.post("/v1/customers", admin, headers={"X-Request-ID": request_id},
                           json={"full_name": "Cliente Id Longo", "email": f"id.{uuid.uuid4().hex[:10]}@example.com"})
        assert created.status_code == 201, created.text
        assert (created.headers["X-Request-ID"] == request_id) is kept


def test_editing_a_field_outside_the_role_needs_a_correction_request(api, admin):
    """R5.1: a field outside the role is not changed but filed as a correction request (202, issue 14: no more
    403 dead end); the editable fields of the same PATCH are applied."""
    user, tokens = api.create_staff(admin, "attendant")
    filed = api.patch("/v1/me", tokens["access_token"], json={"full_name": "Outro Nome", "phone": "+5511988887777"})
    assert filed.status_code == 202, filed.text
    body = filed.json()
    assert (body["fields"], body["status"], body["applied"]) == (["full_name"], "pending", ["phone"])
    me = api.get("/v1/me", tokens["access_token"]).json()
    assert me["full_name"] == user["full_name"] and me["phone"] != user["phone"]


def test_nobody_under_18_gets_an_account(api, admin):
    """R8.1: the day before the 18th birthday is refused with 422 naming birth_date; the day itself is accepted."""
    today = today_in_brazil()
    eighteen = years_before(today, 18)
    day_before_birthday = eighteen.toordinal() + 1  # born one day later: turns 18 tomorrow
    from datetime import date

    too_young = api.post("/v1/users", admin, json=staff_payload(birth_date=date.fromordinal(day_before_birthday)
                                                                .isoformat()))
    body = problem(too_young, 422, "validation-error")
    assert [e["field"] for e in body["errors"]] == ["birth_date"]
    if not (today.month == 2 and today.day == 29):
        just_18 = api.post("/v1/users", admin, json=staff_payload(birth_date=eighteen.isoformat()))
        assert just_18.status_code == 201, just_18.text
        # a later birth-date change is checked the same way
        user_id = just_18.json()["id"]
        younger = api.patch(f"/v1/users/{user_id}", admin, json={"birth_date": date.fromordinal(
            day_before_birthday).isoformat()})
        assert [e["field"] for e in problem(younger, 422, "validation-error")["errors"]] == ["birth_date"]


def test_lockout_after_five_failures_and_its_expiry(api, admin):
    """Brute force: the 6th attempt is 429 with Retry-After, even with the right password; it expires."""
    user, _ = api.create_staff(admin, "attendant")
    email = user["email"]
    for _ in range(5):
        problem(api.login(email, "wrong password 123"), 401, "invalid-credentials")
    locked = api.login(email, PASSWORD)
    problem(locked, 429, "too-many-requests")
    retry_after = int(locked.headers["Retry-After"])
    assert 1 <= retry_after <= 2  # IDENTITY_LOCKOUT_BASE_S=2 in the e2e platform
    time.sleep(retry_after + 0.2)
    assert api.login(email, PASSWORD).status_code == 200


def test_unknown_email_and_wrong_password_are_the_same_401(api, admin):
    user, _ = api.create_staff(admin, "attendant")
    wrong = problem(api.login(user["email"], "wrong password 123"), 401, "invalid-credentials")
    unknown = problem(api.login("ninguem@example.com.br", "wrong password 123"), 401, "invalid-credentials")
    assert wrong["detail"] == unknown["detail"] and wrong["title"] == unknown["title"]


def test_refresh_rotates_and_a_reused_token_revokes_the_session(api, admin):
    user, tokens = api.create_staff(admin, "attendant")
    second = api.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert second.status_code == 200, second.text
    pair = second.json()
    assert pair["refresh_token"] != tokens["refresh_token"]
    assert api.get("/v1/me", pair["access_token"]).status_code == 200
    reused = api.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    problem(reused, 401, "invalid-token")
    # the whole session is gone: the newest refresh token and its access token too
    problem(api.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}), 401, "invalid-token")
    wait_for(lambda: api.get("/v1/me", pair["access_token"]).status_code == 401, timeout=10)


def test_logout_takes_effect_on_the_next_request(api, admin):
    _, tokens = api.create_staff(admin, "supervisor")
    access = tokens["access_token"]
    assert api.get("/v1/me", access).status_code == 200
    assert api.post("/v1/auth/logout", access).status_code == 204
    refused = api.get("/v1/me", access)  # the very next request, no waiting
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")


def test_password_change_ends_the_other_sessions(api, admin):
    user, first = api.create_staff(admin, "attendant")
    second = api.tokens(user["email"])
    changed = api.post("/v1/auth/password", second["access_token"],
                       json={"current_password": PASSWORD, "new_password": "Outra-Senha-Bem-Longa-9"})
    assert changed.status_code == 200 and changed.json() == {"revoked_sessions": 1}
    assert api.get("/v1/me", first["access_token"]).status_code == 401
    assert api.get("/v1/me", second["access_token"]).status_code == 200
    assert api.login(user["email"], "Outra-Senha-Bem-Longa-9").status_code == 200


def test_deactivated_user_is_refused_at_once(api, admin):
    user, tokens = api.create_staff(admin, "attendant")
    assert api.get("/v1/me", tokens["access_token"]).status_code == 200
    deactivated = api.post(f"/v1/users/{user['id']}/deactivate", admin)
    assert deactivated.status_code == 200 and deactivated.json() == {"id": user["id"], "status": "deactivated"}
    assert api.get("/v1/me", tokens["access_token"]).status_code == 401
    problem(api.login(user["email"], PASSWORD), 403, "account-deactivated")
    problem(api.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401, "invalid-token")


def test_role_change_revokes_the_sessions(api, admin):
    user, tokens = api.create_staff(admin, "attendant")
    assert api.get("/v1/users", tokens["access_token"]).status_code == 403
    promoted = api.patch(f"/v1/users/{user['id']}", admin, json={"role": "supervisor"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "supervisor"
    assert api.get("/v1/me", tokens["access_token"]).status_code == 401
    fresh = api.tokens(user["email"])
    assert api.get("/v1/users", fresh["access_token"]).status_code == 200


def _jpeg_with_gps() -> bytes:
    image = Image.new("RGB", (64, 48), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    exif[0x8825] = {1: "S", 2: (23.0, 33.0, 1.0), 3: "W", 4: (46.0, 38.0, 2.0)}  # GPS: São Paulo
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def test_photo_upload_strips_exif_and_gps(api, admin):
    user, tokens = api.create_staff(admin, "attendant")
    original = _jpeg_with_gps()
    assert b"Exif" in original and Image.open(io.BytesIO(original)).getexif().get_ifd(0x8825)
    put = api.put(f"/v1/users/{user['id']}/photo", tokens["access_token"], data=original,
                  headers={"Content-Type": "image/png"})  # a wrong header: the bytes decide
    assert put.status_code == 200, put.text
    assert put.json()["content_type"] == "image/jpeg"
    got = api.get(f"/v1/users/{user['id']}/photo", tokens["access_token"])
    assert got.status_code == 200 and got.headers["Content-Type"] == "image/jpeg"
    assert b"Exif" not in got.content and b"CameraMaker" not in got.content
    stored = Image.open(io.BytesIO(got.content))
    assert stored.size == (64, 48) and not stored.getexif()
    assert api.get("/v1/me", tokens["access_token"]).json()["has_photo"] is True
    not_image = api.put(f"/v1/users/{user['id']}/photo", tokens["access_token"], data=b"GIF89a" + b"\0" * 100,
                        headers={"Content-Type": "image/jpeg"})
    assert not_image.status_code == 422
    too_big = api.put(f"/v1/users/{user['id']}/photo", tokens["access_token"], data=b"\xff" * (2 * 1024 * 1024 + 1),
                      headers={"Content-Type": "image/jpeg"})
    assert too_big.status_code == 413


def test_the_data_map_tags_every_personal_field_with_a_category(api, admin):
    """R1.1: one declared map, served by the API."""
    _, tokens = api.create_staff(admin, "attendant")
    response = api.get("/v1/data-map", tokens["access_token"])
    assert response.status_code == 200
    entries = {(e["resource"], e["field"]): e for e in response.json()["items"]}
    for field in ("full_name", "email", "phone", "birth_date", "address", "job_title", "gender", "photo"):
        assert entries[("user", field)]["category"] in (
            "identification", "contact", "demographic", "professional", "image")
        assert entries[("user", field)]["encrypted_at_rest"] is True
    assert entries[("user", "password")]["category"] == "credential"
    assert {f for (r, f) in entries if r == "customer"} == {"full_name", "email", "phone", "birth_date", "address",
                                                           "gender"}
    shareable = {f for (r, f), e in entries.items() if e["shareable_with_integrations"]}
    assert shareable == {"full_name", "email", "phone"}  # R4.1: nothing else may ever leave


def test_customers_are_found_by_email_or_phone_and_duplicates_refused(api, admin):
    _, tokens = api.create_staff(admin, "attendant")
    token = tokens["access_token"]
    email = f"cliente.{uuid.uuid4().hex[:8]}@example.com"
    phone = f"+55 85 9{uuid.uuid4().int % 10**4:04d}-{uuid.uuid4().int % 10**4:04d}"
    created = api.post("/v1/customers", token, json={"full_name": "Cliente Busca", "email": email, "phone": phone})
    assert created.status_code == 201, created.text
    customer = created.json()
    by_email = api.post("/v1/customers/search", token, json={"email": email.upper()}).json()["items"]
    by_phone = api.post("/v1/customers/search", token, json={"phone": phone}).json()["items"]
    assert [c["id"] for c in by_email] == [c["id"] for c in by_phone] == [customer["id"]]
    duplicate = api.post("/v1/customers", token, json={"full_name": "Outra Pessoa", "phone": phone})
    assert problem(duplicate, 409, "conflict")["field"] == "phone"
    no_contact = api.post("/v1/customers", token, json={"full_name": "Sem Contato"})
    assert {e["field"] for e in problem(no_contact, 422, "validation-error")["errors"]} == {"email", "phone"}


def test_a_write_sent_again_with_its_idempotency_key_is_answered_as_the_first_time(api, admin):
    """Issue 9: a write whose answer was lost is asked again with the same key and never carried out
    twice. Through the gateway: the same key, the same answer (and one customer);
    another body under the key, 422; another caller's key is theirs alone; a malformed key, 400."""
    _, tokens = api.create_staff(admin, "attendant")
    token = tokens["access_token"]
    email = f"idem.{uuid.uuid4().hex[:8]}@example.com"
    key = f"idem-{uuid.uuid4()}"
    body = {"full_name": "Cliente Idempotente", "email": email}
    first = api.post("/v1/customers", token, json=body, headers={"Idempotency-Key": key})
    again = api.post("/v1/customers", token, json=body, headers={"Idempotency-Key": f'"{key}"'})
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert first.json() == again.json() and again.headers["Idempotency-Key"] == key
    found = api.post("/v1/customers/search", token, json={"email": email}).json()["items"]
    assert [c["id"] for c in found] == [first.json()["id"]]
    reused = api.post("/v1/customers", token, json={**body, "full_name": "Outro Nome"},
                      headers={"Idempotency-Key": key})
    assert problem(reused, 422, "idempotency-key-reused")
    # another attendant's request under the same key is their own request (keys are per caller)
    _, other = api.create_staff(admin, "attendant")
    theirs = api.post("/v1/customers", other["access_token"], json=body, headers={"Idempotency-Key": key})
    assert problem(theirs, 409, "conflict")["field"] == "email"  # carried out (and refused on its own merits)
    malformed = api.post("/v1/customers", token, json=body, headers={"Idempotency-Key": "spaces are not allowed"})
    assert problem(malformed, 400, "malformed-request")["errors"][0]["field"] == "Idempotency-Key"
    # without a key the gateway draws one and says it, for a retry after a 503
    drawn = api.post("/v1/customers", token, json={"full_name": "Sem Chave", "email": f"drawn.{key}@example.com"})
    assert drawn.status_code == 201 and len(drawn.headers["Idempotency-Key"]) == 36
