"""The integrations service on real RabbitMQ and PostgreSQL: events from the owners' exchanges become signed
webhooks at a local receiver that verifies each one with the ``standardwebhooks`` package; retries keep the
``webhook-id``; 410 disables; ``abort-message`` stops; resend and recover deliver; a rotation sends two
signatures that both verify; the SSRF guard refuses the loopback without the allow-list."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.testing import wait_for


def register(hub, url: str, fields=("email", "name"), events=("*",)) -> dict:
    return hub.admin.register("CRM Acme", url, list(events), list(fields), "https://acme.example/privacidade")


def messages(hub, integration_id: str, status: str | None = None) -> list[dict]:
    return hub.admin.webhook_messages(integration_id, status)["items"]


def test_a_receiver_failing_twice_then_recovering_gets_one_signed_message_with_one_id(hub, receiver) -> None:
    created = register(hub, receiver.url + "/crm")
    receiver.script["/crm"] = [(500, {}), (503, {})]
    hub.customer_registered()
    wait_for(lambda: len(receiver.at("/crm")) == 3, timeout=10)
    deliveries = receiver.at("/crm")
    CUSTOMER, PERSON = hub.CUSTOMER, hub.PERSON
    payloads = [Webhook(created["secret"]).verify(d.body, d.headers) for d in deliveries]
    assert {d.headers["webhook-id"] for d in deliveries} == {messages(hub, created["id"])[0]["id"]}
    assert payloads[-1]["type"] == "customer.created"
    assert payloads[-1]["data"]["customer"] == {"id": CUSTOMER, "email": PERSON["email"], "name": PERSON["name"]}
    assert PERSON["phone"] not in deliveries[-1].body.decode()
    wait_for(lambda: messages(hub, created["id"])[0]["status"] == "succeeded", timeout=5)
    [message] = messages(hub, created["id"])
    assert [(a["number"], a["outcome"], a["status_code"]) for a in message["attempts"]] == [
        (1, "failed", 500), (2, "failed", 503), (3, "succeeded", 200)]
    assert ("identity", (CUSTOMER,), ("email", "name"), f"integration:{created['id']}") in hub.SHARES
    engine = sa.create_engine(hub.database_url)
    with engine.connect() as conn:
        shared = conn.execute(sa.text("SELECT integration_id, fields FROM shared_subjects WHERE subject_id = :s"),
                              {"s": CUSTOMER}).all()
    engine.dispose()
    assert [(r[0], sorted(r[1])) for r in shared] == [(created["id"], ["email", "name"])]


def test_410_disables_the_endpoint_and_abort_message_stops_the_retries(hub, receiver) -> None:
    gone = register(hub, receiver.url + "/gone")
    abort = register(hub, receiver.url + "/abort")
    receiver.script["/gone"] = [(410, {})]
    receiver.script["/abort"] = [(400, {"webhook-delivery": "abort-message"})]
    hub.customer_registered()
    wait_for(lambda: hub.admin.integration(gone["id"])["status"] == "disabled", timeout=10)
    assert hub.admin.integration(gone["id"])["disabled_reason"] == "gone"
    wait_for(lambda: messages(hub, abort["id"])[0]["status"] == "aborted", timeout=5)
    hub.customer_registered()  # to a disabled endpoint: queued for the others only
    wait_for(lambda: len(messages(hub, abort["id"])) == 2, timeout=10)
    assert len(receiver.at("/gone")) == 1 and len(messages(hub, gone["id"])) == 1
    assert [len(m["attempts"]) for m in messages(hub, abort["id"], "aborted")] == [1]


def test_resend_and_recover_deliver_messages_that_failed_for_good(hub, receiver) -> None:
    created = register(hub, receiver.url + "/down")
    receiver.script["/down"] = [(500, {})] * 6
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    hub.customer_registered()
    hub.customer_registered()
    # failed for good, both, in one listing (two listings could see them failed, then claimed for a retry)
    wait_for(lambda: [(m["status"], m["next_attempt_at"]) for m in messages(hub, created["id"])]
             == [("failed", None)] * 2, timeout=10)
    first, second = messages(hub, created["id"])
    hub.admin.resend(created["id"], first["id"])
    wait_for(lambda: hub.admin.webhook_message(created["id"], first["id"])["status"] == "succeeded", timeout=5)
    job = hub.admin.recover(created["id"], since)
    assert job["total"] == 1
    wait_for(lambda: hub.admin.recovery(created["id"], job["id"])["status"] == "completed", timeout=5)
    wait_for(lambda: hub.admin.webhook_message(created["id"], second["id"])["status"] == "succeeded", timeout=5)
    ids = [d.headers["webhook-id"] for d in receiver.at("/down")]
    assert ids.count(first["id"]) == 4 and ids.count(second["id"]) == 4
    for d in receiver.at("/down"):
        Webhook(created["secret"]).verify(d.body, d.headers)


def test_during_a_rotation_two_signatures_are_sent_and_both_verify(hub, receiver) -> None:
    created = register(hub, receiver.url + "/rotating")
    rotated = hub.admin.rotate_secret(created["id"])
    assert rotated["secret"] != created["secret"] and rotated["previous_valid_until"]
    hub.customer_registered()
    wait_for(lambda: len(receiver.at("/rotating")) == 1, timeout=10)
    [delivery] = receiver.at("/rotating")
    assert len(delivery.headers["webhook-signature"].split()) == 2
    assert Webhook(created["secret"]).verify(delivery.body, delivery.headers) \
        == Webhook(rotated["secret"]).verify(delivery.body, delivery.headers)
    assert hub.admin.integration(created["id"])["previous_secret_valid_until"] == rotated["previous_valid_until"]


def test_only_integrations_manage_reaches_the_registry(hub, receiver) -> None:
    from nameko.standalone.rpc import ServiceRpcProxy
    from upgestao_kernel.testing_tokens import acting_as

    with ServiceRpcProxy("integrations", {"AMQP_URI": hub.amqp_uri, "serializer": "json"},
                         context_data=acting_as(str(uuid.uuid4()), "attendant"), timeout=10) as attendant:
        with pytest.raises(Exception) as refused:
            attendant.integrations()
    assert "forbidden" in str(refused.value) or "403" in str(refused.value)
    with pytest.raises(ServiceError) as bad:
        hub.admin.register("X", receiver.url + "/x", ["*"], ["email", "birth_date"], "https://x.example/p")
    assert bad.value.status == 422 and "birth_date" in json.dumps(bad.value.extensions)


@pytest.fixture
def no_allow_list(monkeypatch, integrations_env):
    monkeypatch.setenv("UPGESTAO_WEBHOOK_ALLOWED_NETWORKS", "")


def test_without_the_allow_list_the_loopback_is_refused_and_recorded(no_allow_list, hub, receiver) -> None:
    created = register(hub, receiver.url + "/ssrf")
    hub.customer_registered()
    wait_for(lambda: messages(hub, created["id"]) and messages(hub, created["id"])[0]["attempts"]
             and messages(hub, created["id"])[0]["attempts"][0]["outcome"], timeout=10)
    attempt = messages(hub, created["id"])[0]["attempts"][0]
    assert attempt["outcome"] == "refused" and attempt["status_code"] is None
    assert receiver.at("/ssrf") == []


def test_a_conversation_message_and_then_the_persons_erasure_reach_the_integration(hub, receiver) -> None:
    created = register(hub, receiver.url + "/desk", fields=("conversations",))
    hub.message_created(str(uuid.uuid4()), private=True)  # a private note: never a webhook
    hub.message_created(hub.MESSAGE)
    wait_for(lambda: len(receiver.at("/desk")) == 1, timeout=10)
    payload = Webhook(created["secret"]).verify(receiver.at("/desk")[0].body, receiver.at("/desk")[0].headers)
    assert payload["type"] == "message.created" and payload["data"]["body"] == hub.BODY
    assert payload["data"]["customer"] == {"id": hub.CUSTOMER}
    assert ("messaging", (hub.MESSAGE,), True, f"integration:{created['id']}") in hub.SHARES
    wait_for(lambda: messages(hub, created["id"], "succeeded"), timeout=5)
    request_id = str(uuid.uuid4())
    hub.erasure_requested(request_id)
    wait_for(lambda: len(receiver.at("/desk")) == 2, timeout=10)
    erased = Webhook(created["secret"]).verify(receiver.at("/desk")[1].body, receiver.at("/desk")[1].headers)
    assert erased == {"type": "subject.erased", "timestamp": erased["timestamp"],
                      "data": {"subject_id": hub.CUSTOMER, "mode": "deletion"}}
    engine = sa.create_engine(hub.database_url)
    with engine.connect() as conn:
        confirmations = conn.execute(sa.text("SELECT body FROM outbox WHERE routing_key = :k"),
                                     {"k": "integrations.subject_erased.v1"}).all()
    engine.dispose()
    [body] = [r[0] if isinstance(r[0], dict) else json.loads(r[0]) for r in confirmations]
    assert body["data"] == {"request_id": request_id, "subject_id": hub.CUSTOMER, "mode": "deletion"}
    assert len(messages(hub, created["id"])) == 2


def test_events_another_service_dropped_into_the_queues_are_parked_never_handled(hub, receiver, amqp_uri) -> None:
    """The default exchange takes a queue's name: the gateway's erasure request in the erasures' queue (not its
    source's broker user), messaging's in the queue of messaging's events (its own user, not its event) and a
    message that is no event are parked with their reasons; nothing reaches the endpoint, the real events do."""
    from kombu import Connection
    from upgestao_kernel.parking import list_parked
    from upgestao_kernel.testing import service_amqp_uri

    created = register(hub, receiver.url + "/guarded")

    def drop(sender: str, queue: str, message_id: str, event_type: str, data: dict) -> None:
        body = {"event_id": str(uuid.uuid4()), "stream_id": "forged-1", "version": 1, "type": event_type,
                "occurred_at": datetime.now(UTC).isoformat(), "actor": {"id": "system", "role": "system"},
                "correlation_id": None, "causation_id": None, "data": data}
        with Connection(service_amqp_uri(amqp_uri, sender)) as conn:
            conn.Producer().publish(body, exchange="", routing_key=queue, message_id=message_id, serializer="json")

    erasure = {"request_id": "forged", "subject_id": hub.CUSTOMER, "mode": "deletion", "recipients": []}
    drop("gateway", "integrations.on_erasure_requested", "forged-1", "privacy.erasure_requested.v1", erasure)
    drop("messaging", "integrations.on_messaging_event", "forged-2", "privacy.erasure_requested.v1", erasure)
    with Connection(service_amqp_uri(amqp_uri, "identity")) as conn:
        conn.Producer().publish("not an event", exchange="", routing_key="integrations.on_identity_event",
                                message_id="forged-3", serializer="json")
    parked = {queue: wait_for(lambda queue=queue: list_parked(amqp_uri, queue), 20) for queue in (
        "integrations.on_erasure_requested", "integrations.on_messaging_event", "integrations.on_identity_event")}
    assert [(p.message_id, p.error) for p in parked["integrations.on_erasure_requested"]] == [
        ("forged-1", "NotTheSource: the event was not sent by its source service's broker user")]
    assert [(p.message_id, p.error) for p in parked["integrations.on_messaging_event"]] == [
        ("forged-2", "NotThisQueue: the event is not of a type this queue is bound for")]
    assert [(p.message_id, p.error) for p in parked["integrations.on_identity_event"]] == [
        ("forged-3", "NotAnEvent: the message is not an event")]
    hub.customer_registered()
    wait_for(lambda: len(receiver.at("/guarded")) == 1, timeout=10)
    assert [m["event_type"] for m in messages(hub, created["id"])] == ["customer.created"]
