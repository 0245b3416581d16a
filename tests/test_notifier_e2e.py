"""The notifier end to end, every service running as a process (issue 12): identity's password reset
reaches the person as an e-mail in the local SMTP sink, its token sets a new password, and the
delivery is recorded (one, sent, one attempt) for an admin to see through the gateway.

The message is read as the sink wrote it (``<UPGESTAO_DATA_DIR>/mail/*.eml``) and parsed with the
``email`` package: a proper multipart/alternative, a Message-ID that is the delivery's, no
List-Unsubscribe on security mail.
"""

from __future__ import annotations

import re
import uuid

import pytest
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, Api, create_user
from e2e_mail import MAIL_TIMEOUT_S, logs_holding, mail_to, text_and_html, wait_for_mail
from upgestao_kernel.testing import wait_for

pytestmark = pytest.mark.e2e

NEW_PASSWORD = "Turmalina-Verde-Cobalto-58"
RESET_EVENT = "identity.password_reset_requested.v1"
# the reset link carries the token (…#token=<43 url-safe characters>); the text also shows it alone
TOKEN = re.compile(r"token=([A-Za-z0-9_-]{43})(?![A-Za-z0-9_-])")


@pytest.fixture(scope="module")
def api(platform):
    return Api(platform.url)


@pytest.fixture(scope="module")
def admin(api):
    return api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]


def deliveries(api: Api, token: str, **params) -> dict:
    response = api.get("/v1/notifications/deliveries", token, params=params)
    assert response.status_code == 200, f"GET /v1/notifications/deliveries: {response.status_code} {response.text}"
    return response.json()


def resets_of(api: Api, token: str, user_id: str) -> list[dict]:
    return [item for item in deliveries(api, token, recipient_id=user_id)["items"]
            if item["kind"] == "password_reset"]


def test_a_password_reset_arrives_by_e_mail_and_its_token_sets_the_new_password(platform, api, admin):
    user = create_user(api, admin, "attendant")
    unknown = f"ninguem.{uuid.uuid4().hex[:8]}@example.com.br"

    # an unknown address is answered as a known one, and nobody is written to
    for address in (unknown, user["email"]):
        response = api.post("/v1/auth/password-reset", json={"email": address})
        assert response.status_code == 202, response.text
        assert response.json() == {"status": "accepted"}

    ((path, message),) = wait_for_mail(platform, user["email"])
    assert path.suffix == ".eml"
    assert message.get_content_type() == "multipart/alternative"
    assert (message["Subject"] or "").strip()
    assert message["Message-ID"]
    assert "List-Unsubscribe" not in message  # security mail: nobody unsubscribes from a reset
    text, html = text_and_html(message)
    tokens = set(TOKEN.findall(text))
    assert len(tokens) == 1, "one reset token in the plain text"
    token = tokens.pop()
    assert token in html, "the HTML says what the plain text says"

    # the delivery: one, sent at the first attempt, its Message-ID the one the sink received
    sent = wait_for(lambda: [d for d in resets_of(api, admin, user["id"]) if d["status"] == "sent"],
                    timeout=MAIL_TIMEOUT_S, interval=0.2)
    assert len(resets_of(api, admin, user["id"])) == 1
    (delivery,) = sent
    assert (delivery["event_type"], delivery["recipient_id"], delivery["attempts"]) == (RESET_EVENT, user["id"], 1)
    assert delivery["last_error"] is None and delivery["sent_at"] and delivery["campaign_id"] is None
    assert delivery["message_id"].strip("<>") == message["Message-ID"].strip().strip("<>")
    assert "email" not in delivery and user["email"] not in str(delivery)
    by_event = deliveries(api, admin, event_id=delivery["event_id"])["items"]
    assert [d["id"] for d in by_event] == [delivery["id"]]
    assert mail_to(platform, unknown) == []
    assert len(mail_to(platform, user["email"])) == 1  # one e-mail per (event, recipient)

    confirmed = api.post("/v1/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD})
    assert confirmed.status_code == 204, confirmed.text
    assert api.login(user["email"], NEW_PASSWORD).status_code == 200
    assert api.login(user["email"], PASSWORD).status_code == 401
    # the token is spent
    again = api.post("/v1/auth/password-reset/confirm", json={"token": token, "new_password": PASSWORD})
    assert again.status_code == 400, again.text
    # neither address nor the token reached a log line of any process (the sink's included)
    assert logs_holding(platform, [user["email"], unknown, token]) == []


def test_the_deliveries_need_notifications_read(platform, api, admin):
    _, tokens = api.create_staff(admin, "attendant")
    response = api.get("/v1/notifications/deliveries", tokens["access_token"])
    assert response.status_code == 403, response.text
    assert response.json()["permission"] == "notifications.read"
    assert api.get("/v1/notifications/deliveries").status_code == 401
    missing = api.get(f"/v1/notifications/campaigns/{uuid.uuid4()}", admin)
    assert missing.status_code == 404, missing.text
