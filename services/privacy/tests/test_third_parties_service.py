"""Privacy's third parties on the running service (RabbitMQ, PostgreSQL as the runtime role), issue 15: the
integrations announced by the integrations service's broker user (and by no one else) become the third
parties of sharing reports, with their names and privacy-policy URLs (R9.1); the summary of a subject names
them; an erasure waits for the integrations' confirmation, taken from that broker user only."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlsplit

import amqp
import sqlalchemy as sa
from kombu import Connection
from upgestao_kernel.broker_identity import broker_user
from upgestao_kernel.context import RequestContext
from upgestao_kernel.events import new_id
from upgestao_kernel.parking import list_parked
from upgestao_kernel.testing import service_amqp_uri, wait_for
from upgestao_kernel.topology import events_exchange_name
from upgestao_kernel.unit_of_work import UnitOfWork
from upgestao_privacy.service_layer import erasures

REGISTERED = "integrations.integration_registered.v1"
CHANGED = "integrations.integration_changed.v1"
ERASED = "integrations.subject_erased.v1"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def envelope(event_type: str, data: dict, occurred_at: datetime, stream_id: str) -> dict:
    event_id = str(uuid.uuid4())
    return {"event_id": event_id, "stream_id": stream_id, "version": 1, "type": event_type,
            "occurred_at": occurred_at.isoformat(), "actor": {"id": None, "role": "system"},
            "correlation_id": event_id, "causation_id": None, "data": data}


def publish(amqp_uri: str, sender: str, body: dict, *, exchange: str, routing_key: str) -> None:
    """``body`` published as ``sender``'s broker user (RabbitMQ checks the user_id it carries)."""
    vhost = unquote(urlsplit(amqp_uri).path[1:]) or "/"
    with Connection(service_amqp_uri(amqp_uri, sender), connect_timeout=5) as conn:
        channel = conn.channel()
        channel.confirm_select()
        channel.basic_publish_confirm(
            amqp.Message(json.dumps(body), content_type="application/json", content_encoding="utf-8",
                         message_id=body["event_id"], delivery_mode=2, user_id=broker_user(sender, vhost)),
            exchange=exchange, routing_key=routing_key)


def integration(integration_id: str, name: str, url: str, status: str = "enabled") -> dict:
    return {"integration_id": integration_id, "name": name, "privacy_policy_url": url, "fields": ["email", "name"],
            "events": ["*"], "status": status, "disabled_reason": None}


def third_party(privacy, recipient: str):
    with privacy.engine.connect() as conn:
        return conn.execute(sa.text("SELECT name, privacy_policy_url, status FROM third_parties "
                                    "WHERE recipient = :r"), {"r": recipient}).first()


def test_integrations_become_third_parties_of_the_summary_and_a_forged_one_is_parked(privacy):
    subject = str(uuid.uuid4())
    exchange = events_exchange_name("integrations")
    recipient = "integration:int_acme0001"
    privacy.publish([
        privacy.record(subject_id=subject, action="share", recipient=recipient, fields=("email", "full_name"),
                       service="identity", purpose="integration delivery: customer.created"),
        privacy.record(subject_id=subject, action="share", recipient="crm-legacy", fields=("email",),
                       service="identity", purpose="export"),
    ])
    privacy.wait_count(2)
    registered = envelope(REGISTERED, integration("int_acme0001", "CRM Acme", "https://acme.example/privacidade"),
                          T0, "integration-int_acme0001")
    publish(privacy.amqp_uri, "integrations", registered, exchange=exchange, routing_key=REGISTERED)
    wait_for(lambda: third_party(privacy, recipient) is not None, timeout=20)
    assert tuple(third_party(privacy, recipient)) == ("CRM Acme", "https://acme.example/privacidade", "enabled")

    changed = envelope(CHANGED, integration("int_acme0001", "CRM Acme 2", "https://acme.example/lgpd", "disabled"),
                       T0 + timedelta(minutes=2), "integration-int_acme0001")
    stale = envelope(CHANGED, integration("int_acme0001", "CRM Velho", "https://old.example/p"),
                     T0 + timedelta(minutes=1), "integration-int_acme0001")
    publish(privacy.amqp_uri, "integrations", changed, exchange=exchange, routing_key=CHANGED)
    wait_for(lambda: third_party(privacy, recipient)[0] == "CRM Acme 2", timeout=20)
    publish(privacy.amqp_uri, "integrations", stale, exchange=exchange, routing_key=CHANGED)  # older: ignored
    # another service's broker user, straight into privacy's queue (the default exchange lets it): parked
    forged = envelope(CHANGED, integration("int_acme0001", "Phishing", "https://evil.example/p"),
                      T0 + timedelta(hours=1), "integration-int_acme0001")
    publish(privacy.amqp_uri, "messaging", forged, exchange="", routing_key="privacy.third_party_on_integration")
    wait_for(lambda: [m for m in list_parked(privacy.amqp_uri, "privacy.third_party_on_integration")
                      if m.message_id == forged["event_id"]], timeout=20)
    wait_for(lambda: privacy.scalar("SELECT count(*) FROM processed_events") >= 3, timeout=20)
    assert tuple(third_party(privacy, recipient)) == ("CRM Acme 2", "https://acme.example/lgpd", "disabled")

    summary = privacy.caller(privacy.DPO).audit_subject_summary(subject)
    shares = {e["recipient"]: e for e in summary["shared_with"]}
    assert (shares[recipient]["name"], shares[recipient]["privacy_policy_url"]) == (
        "CRM Acme 2", "https://acme.example/lgpd")
    assert (shares["crm-legacy"]["name"], shares["crm-legacy"]["privacy_policy_url"]) == (None, None)


def test_an_erasure_waits_for_the_integrations_confirmation_from_its_broker_user(privacy):
    subject, request_id = str(uuid.uuid4()), str(uuid.uuid4())
    engine = privacy.engine
    context = RequestContext(request_id=new_id(), actor_id="system", actor_role="system")
    with UnitOfWork(engine, "privacy", context) as uow:
        erasures.start_erasure(uow, request_id, subject, "deletion", erasures.participants({}), ["integration:x"])

    def progress() -> dict:
        with UnitOfWork(engine, "privacy", RequestContext(request_id=new_id())) as uow:
            return erasures.erasure_progress(uow, request_id)

    assert progress()["participants"] == {"identity": "pending", "integrations": "pending", "messaging": "pending"}
    confirmation = {"request_id": request_id, "subject_id": subject, "mode": "deletion"}
    forged = envelope(ERASED, confirmation, T0, f"erasure-{request_id}")
    publish(privacy.amqp_uri, "messaging", forged, exchange="", routing_key="privacy.erasure_confirmed_by_integrations")
    wait_for(lambda: [m for m in list_parked(privacy.amqp_uri, "privacy.erasure_confirmed_by_integrations")
                      if m.message_id == forged["event_id"]], timeout=20)
    assert progress()["participants"]["integrations"] == "pending"
    real = envelope(ERASED, confirmation, T0, f"erasure-{request_id}")
    publish(privacy.amqp_uri, "integrations", real, exchange=events_exchange_name("integrations"), routing_key=ERASED)
    wait_for(lambda: progress()["participants"]["integrations"] == "confirmed", timeout=20)
    assert progress()["pending"] == ["identity", "messaging"] and not progress()["completed"]
