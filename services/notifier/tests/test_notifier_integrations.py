"""The mail to admins when an integration is disabled (issue 15), on real RabbitMQ, PostgreSQL and SMTP: the
notifier and a fake integrations service answering ``notice`` as the contract names it, the events published
on ``integrations.events`` as the integrations service's broker user.

What is proven: an endpoint disabled by the platform (``gone``, ``failing``) mails every admin the notice
lists, once each, in their language, naming the tool and the reason; one disabled by hand (``manual``) asks
for nothing (the notice is never fetched); an event on that exchange from another broker user is parked,
never handled."""

from __future__ import annotations

import uuid

import pytest
from kombu import Connection, Producer
from upgestao_kernel.events import SYSTEM_ACTOR, EventEnvelope, new_id, utcnow
from upgestao_kernel.nameko_ext import rpc
from upgestao_kernel.testing import service_amqp_uri, wait_for
from upgestao_kernel.topology import parking_queue_name

DISABLED = "integrations.integration_disabled.v1"
INTEGRATION = "int_" + "a1b2c3d4e5f60718293a4b5c6d"
ADMINS = [
    {"id": str(uuid.uuid4()), "to": "ada.admin@example.com.br", "locale": "en", "name": "Ada Admin"},
    {"id": str(uuid.uuid4()), "to": "bruno.admin@example.com.br", "locale": "pt-BR", "name": "Bruno Admin"},
]


class Notices:
    asked: list[tuple] = []


class FakeIntegrations:
    """``integrations.notice`` as the contract names it: the admins (ids, addresses, languages), the tool's
    name and the reason."""

    name = "integrations"

    @rpc
    def notice(self, notice_id, recipient_id=None, cursor=None):
        Notices.asked.append((notice_id, recipient_id, cursor))
        return {"id": notice_id, "kind": "integration_disabled", "campaign_id": None, "next": None,
                "recipients": ADMINS,
                "data": {"integration_id": INTEGRATION, "integration_name": "CRM Vendas", "reason": "gone"}}


@pytest.fixture
def platform(run_service, amqp_uri, smtp_server, mail_env):
    from upgestao_notifier.service import NotifierService

    Notices.asked.clear()
    run_service(FakeIntegrations, lambda url: None)
    notifier = run_service(NotifierService, "upgestao_notifier:migrations")
    wait_for(lambda: notifier.health()["status"] == "ok", 20)
    return amqp_uri


def publish(amqp_uri: str, data: dict, *, event_id: str | None = None, as_service: str = "integrations",
            exchange: str = "integrations.events", routing_key: str = DISABLED) -> str:
    """An integrations event as its relay publishes it: as the integrations service's broker user (another
    service's user, straight into the notifier's queue through the default exchange: a forger)."""
    envelope = EventEnvelope(
        event_id=event_id or new_id(), stream_id=INTEGRATION, version=2, type=DISABLED, occurred_at=utcnow(),
        actor=SYSTEM_ACTOR, correlation_id=None, causation_id=None, data=data,
    )
    with Connection(service_amqp_uri(amqp_uri, as_service), transport_options={"confirm_publish": True}) as conn:
        Producer(conn.default_channel, serializer="json").publish(
            envelope.to_message(), exchange=exchange, routing_key=routing_key, delivery_mode=2, mandatory=True,
            retry=False)
    return envelope.event_id


def parked(amqp_uri: str) -> int:
    with Connection(amqp_uri) as connection:
        _, count, _ = connection.default_channel.queue_declare(
            parking_queue_name("notifier.on_integrations_event"), passive=True)
    return count


def test_an_endpoint_gone_mails_every_admin_once_in_their_language(platform, smtp_server):
    manual = publish(platform, {"integration_id": INTEGRATION, "reason": "manual"})
    gone = publish(platform, {"integration_id": INTEGRATION, "reason": "gone"})
    mails = smtp_server.wait_for(2, timeout=20)
    by_to = {mail["To"]: mail for mail in mails}
    assert set(by_to) == {"ada.admin@example.com.br", "bruno.admin@example.com.br"}
    assert by_to["ada.admin@example.com.br"]["Subject"] == "An integration was disabled in UpGestão"
    assert by_to["bruno.admin@example.com.br"]["Subject"] == "Uma integração foi desativada no UpGestão"
    english = by_to["ada.admin@example.com.br"].get_body(("plain",)).get_content()
    assert "CRM Vendas" in english and INTEGRATION in english and "410 (Gone)" in english
    assert "Hello Ada Admin," in english
    portuguese = by_to["bruno.admin@example.com.br"].get_body(("plain",)).get_content()
    assert "respondeu 410 (Gone)" in portuguese and "Olá, Bruno Admin," in portuguese
    # disabled by hand: the notice is never even asked for
    assert [asked[0] for asked in Notices.asked] == [gone]
    assert manual not in {asked[0] for asked in Notices.asked}
    assert len(smtp_server.messages()) == 2


def test_the_event_again_sends_nothing_more(platform, smtp_server):
    data = {"integration_id": INTEGRATION, "reason": "failing"}
    event_id = publish(platform, data)
    smtp_server.wait_for(2, timeout=20)
    # the same event delivered again (a relay's retry): its deliveries exist, nobody is mailed twice
    publish(platform, data, event_id=event_id)
    wait_for(lambda: len(Notices.asked) == 2, 20)  # asked again before it is known (README: audited again)
    second = publish(platform, {"integration_id": INTEGRATION, "reason": "gone"})  # a later event: mailed
    smtp_server.wait_for(4, timeout=20)
    wait_for(lambda: [a[0] for a in Notices.asked] in ([event_id, event_id, second], [event_id, second, event_id]),
             20)
    assert len(smtp_server.messages()) == 4


def test_an_event_from_another_broker_user_is_parked_never_handled(platform, smtp_server):
    publish(platform, {"integration_id": INTEGRATION, "reason": "gone"}, as_service="messaging", exchange="",
            routing_key="notifier.on_integrations_event")
    wait_for(lambda: parked(platform) == 1, 20)
    assert Notices.asked == [] and smtp_server.messages() == []
