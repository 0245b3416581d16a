"""Attacks on the notifier (issue 12): on what makes it send, what it says, and who may read its records.

The notifier sends mail because of identity's events and puts into it what identity's notice says; an
attacker holding another pod's broker credentials (the Internet-facing gateway's) tries to make it send,
or to read who was mailed what; a staff user tries to smuggle markup into a message through their name.
Each attack runs against the whole platform (real broker, databases, SMTP sink) and must fail.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import amqp
import pytest
import upgestao_kernel.nameko_ext.rpc  # noqa: F401  (answers rebuilt as ServiceError, not RemoteError)
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, Api, staff_payload
from e2e_mail import mail_to, text_and_html, wait_for_mail
from kombu import Connection
from nameko.standalone.rpc import ClusterRpcProxy
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.parking import list_parked
from upgestao_kernel.testing import wait_for

pytestmark = pytest.mark.e2e

QUEUE = "notifier.on_identity_event"
RESET = "identity.password_reset_requested.v1"


@pytest.fixture(scope="module")
def api(platform) -> Api:
    return Api(platform.url)


@pytest.fixture(scope="module")
def admin(api) -> str:
    return api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]


@pytest.fixture(scope="module")
def gateway_broker(platform) -> dict:
    assert not platform.shared_broker_user, "the platform could not create the services' broker users"
    return {"AMQP_URI": platform.broker_uris["gateway"], "serializer": "json"}


def _staff(api, admin, **over) -> dict:
    payload = staff_payload("attendant", **over)
    created = api.post("/v1/users", admin, json=payload)
    assert created.status_code == 201, created.text
    return {**payload, **created.json()}


def _envelope(event_id: str, user_id: str) -> dict:
    return {"event_id": event_id, "stream_id": f"user-{user_id}", "version": 9, "type": RESET,
            "occurred_at": datetime.now(UTC).isoformat(), "actor": {"id": None, "role": None},
            "correlation_id": event_id, "causation_id": event_id,
            "data": {"user_id": user_id, "expires_at": datetime.now(UTC).isoformat()}}


def test_a_reset_event_forged_into_the_notifiers_queue_is_parked_and_mails_nobody(platform, api, admin):
    """The gateway may publish into a queue by name (default exchange): it replays a real reset event and
    forges a new one straight into the notifier's queue. Both are parked (not identity's broker user); the
    real event's e-mail arrived once, the forged one never."""
    victim = _staff(api, admin)
    assert api.post("/v1/auth/password-reset", json={"email": victim["email"]}).status_code == 202
    [(genuine, _)] = wait_for_mail(platform, victim["email"])
    forged_id = str(uuid.uuid4())
    bodies = [_envelope(forged_id, victim["id"])]
    # the genuine event, replayed: the same user, identity's own event id taken from the delivery record
    deliveries = api.get(f"/v1/notifications/deliveries?recipient_id={victim['id']}", admin).json()["items"]
    replayed_id = next(d["event_id"] for d in deliveries if d["kind"] == "password_reset")
    bodies.append(_envelope(replayed_id, victim["id"]))
    with Connection(platform.broker_uris["gateway"], connect_timeout=5) as conn:
        channel = conn.channel()
        channel.confirm_select()
        for body in bodies:
            channel.basic_publish_confirm(
                amqp.Message(json.dumps(body), content_type="application/json", content_encoding="utf-8",
                             message_id=body["event_id"], delivery_mode=2), exchange="", routing_key=QUEUE)
    parked = wait_for(lambda: (lambda p: p if {forged_id, replayed_id} <= p.keys() else None)(
        {m.message_id: m for m in list_parked(platform.amqp_uri, QUEUE)}), timeout=30)
    assert all("NotTheSource" in parked[i].error for i in (forged_id, replayed_id))
    assert [path for path, _ in mail_to(platform, victim["email"])] == [genuine]


FORGED = [
    pytest.param({"actor_id": "system", "actor_role": "system"}, id="system"),
    pytest.param({"actor_id": "00000000-0000-4000-8000-000000000001", "actor_role": "admin"}, id="admin"),
    pytest.param({"actor_id": "00000000-0000-4000-8000-000000000001", "actor_role": "dpo",
                  "caller_service": "privacy"}, id="dpo-as-privacy"),
]


@pytest.mark.parametrize("headers", FORGED)
def test_with_the_gateways_credentials_no_header_reads_delivery_records(gateway_broker, headers):
    with ClusterRpcProxy(gateway_broker, context_data=headers, timeout=15) as cluster:
        for call in (lambda: cluster.notifier.deliveries({}), lambda: cluster.notifier.campaign(str(uuid.uuid4()))):
            with pytest.raises(ServiceError) as refused:
                call()
            assert refused.value.status in (401, 403)


def test_an_attendant_reads_no_delivery_records(api, admin):
    attendant = _staff(api, admin)
    token = api.admin_tokens(attendant["email"], attendant["password"])["access_token"]
    answer = api.get("/v1/notifications/deliveries", token)
    assert answer.status_code == 403 and answer.headers["Content-Type"].startswith("application/problem+json")


def test_markup_in_a_name_is_text_in_the_mail_never_html(platform, api, admin):
    """A staff member's name is theirs to write: markup in it must arrive as text, not as a link or a script."""
    name = 'Ana "<b>" Lima & <a href=https://evil.example>clique</a>'
    victim = _staff(api, admin, full_name=name)
    assert api.post("/v1/auth/password-reset", json={"email": victim["email"]}).status_code == 202
    [(_, message)] = wait_for_mail(platform, victim["email"])
    text, html = text_and_html(message)
    assert name in text
    assert "<a href=https://evil.example>" not in html and "<b>" not in html
    assert "&lt;a href=https://evil.example&gt;" in html and "&lt;b&gt;" in html
    assert "Bcc" not in message and "\n" not in (message["Subject"] or "")
