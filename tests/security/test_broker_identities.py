"""Attacks with the gateway's broker credentials (issue 11, finding 1, broker half; finding 2, unrouted half).

The gateway faces the Internet: whoever takes over its pod holds its ``AMQP_URI``. Before each
service had its own broker user, that URI was the one every process shared (guest), and each attack
below worked: consume ``rpc-identity`` or ``privacy.audit-ingest`` (requests read, the audit trail
acked away), bind a queue to ``nameko-rpc`` for ``identity.public_keys`` (answer it as a competing
consumer, then sign tokens the gateway accepts), publish as identity (``user_id``) or publish audit
records claiming ``service=identity``, read ``upgestao.unrouted`` (reset tokens). Each test asserts
the broker, or the audit ingest, now refuses it, on the whole platform the tests start
(``platform``: its own vhost, users provisioned by ``scripts/upgestao_platform.py``).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from urllib.parse import quote

import amqp
import pytest
import sqlalchemy as sa
from amqp.exceptions import AccessRefused, PreconditionFailed
from kombu import Connection
from upgestao_kernel.audit import AuditRecord
from upgestao_kernel.broker_identity import broker_user
from upgestao_kernel.broker_permissions import UNROUTED_POLICY
from upgestao_kernel.parking import ERROR_HEADER, list_parked
from upgestao_kernel.testing import _api, wait_for
from upgestao_kernel.topology import AUDIT_EXCHANGE, UNROUTED

INGEST = "privacy.audit-ingest"


@pytest.fixture(scope="module")
def gateway_uri(platform) -> str:
    uri = platform.broker_uris["gateway"]
    assert not platform.shared_broker_user, "the platform could not create the services' broker users"
    assert broker_user("gateway", platform.vhost) in uri
    return uri


@pytest.fixture(scope="module")
def admin_uri(platform) -> str:
    return platform.amqp_uri


def _channel(uri: str):
    conn = Connection(uri, connect_timeout=5)
    conn.connect()
    return conn, conn.channel()


def attempt(uri: str, action) -> Exception | None:
    """Run ``action(channel)`` as ``uri``'s user: the broker's refusal (the exception), or None."""
    conn, channel = _channel(uri)
    try:
        action(channel)
        return None
    except (AccessRefused, PreconditionFailed) as exc:
        return exc
    finally:
        conn.release()


def queue_exists(uri: str, name: str) -> bool:
    return attempt(uri, lambda channel: channel.queue_declare(name, passive=True)) is None


def record(service: str) -> dict:
    return AuditRecord(service=service, action="read", resource_type="user", resource_id=str(uuid.uuid4()),
                       subject_id=str(uuid.uuid4()), fields=("email",), purpose="forged",
                       actor_id=str(uuid.uuid4()), actor_role="admin", request_id=uuid.uuid4().hex, source_ip=None,
                       occurred_at=datetime.now(UTC)).to_message()


def stored(platform, audit_id: str) -> bool:
    engine = sa.create_engine(platform.database_urls["privacy"])
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM audit_records WHERE audit_id = :id"),
                                {"id": audit_id}).scalar_one() > 0
    finally:
        engine.dispose()


def publish_confirmed(uri: str, body: dict, exchange: str, routing_key: str, **properties) -> None:
    conn, channel = _channel(uri)
    try:
        channel.confirm_select()
        channel.basic_publish_confirm(
            amqp.Message(json.dumps(body), content_type="application/json", content_encoding="utf-8",
                         message_id=body["audit_id"], delivery_mode=2, **properties),
            exchange=exchange, routing_key=routing_key)
    finally:
        conn.release()


def test_the_gateway_cannot_consume_identity_s_rpc_queue(gateway_uri):
    assert queue_exists(gateway_uri, "rpc-identity")  # the queue is there (a passive declare needs nothing)
    refused = attempt(gateway_uri, lambda channel: channel.basic_consume("rpc-identity", callback=lambda m: None))
    assert isinstance(refused, AccessRefused), refused
    refused = attempt(gateway_uri, lambda channel: channel.basic_consume("rpc-privacy", callback=lambda m: None))
    assert isinstance(refused, AccessRefused), refused


def test_the_gateway_cannot_consume_or_purge_the_audit_ingest(gateway_uri):
    assert queue_exists(gateway_uri, INGEST)
    for action in (lambda channel: channel.basic_consume(INGEST, callback=lambda m: None),
                   lambda channel: channel.basic_get(INGEST),
                   lambda channel: channel.queue_purge(INGEST),
                   lambda channel: channel.queue_delete(INGEST)):
        refused = attempt(gateway_uri, action)
        assert isinstance(refused, AccessRefused), refused


def test_the_gateway_cannot_answer_identity_public_keys_as_a_competing_consumer(gateway_uri):
    queue = f"rpc.reply-gateway-{uuid.uuid4()}"  # a queue the gateway may declare: its own reply queue's name

    def compete(channel) -> None:
        channel.queue_declare(queue, auto_delete=True)
        channel.queue_bind(queue, "nameko-rpc", "identity.public_keys")

    refused = attempt(gateway_uri, compete)
    assert isinstance(refused, AccessRefused) and "identity.public_keys" in str(refused), refused
    for key in ("identity.*", "#", "*.public_keys"):
        refused = attempt(gateway_uri, lambda channel, key=key: (channel.queue_declare(queue, auto_delete=True),
                                                                 channel.queue_bind(queue, "nameko-rpc", key)))
        assert isinstance(refused, AccessRefused), key
    # nor by declaring identity's own queue
    refused = attempt(gateway_uri, lambda channel: channel.queue_declare("rpc-identity", durable=True))
    assert isinstance(refused, AccessRefused), refused


def test_the_broker_refuses_a_message_claiming_to_be_identity_s(platform, gateway_uri):
    body = record("gateway")
    with pytest.raises(PreconditionFailed, match="user_id"):
        publish_confirmed(gateway_uri, body, AUDIT_EXCHANGE, "audit.gateway.read",
                          user_id=broker_user("identity", platform.vhost))
    assert not stored(platform, body["audit_id"])


def test_the_gateway_cannot_publish_identity_s_events_nor_audit_under_identity_s_routing_key(platform, gateway_uri):
    body = record("identity")
    with pytest.raises(AccessRefused, match="identity.events"):
        publish_confirmed(gateway_uri, body, "identity.events", "identity.session_revoked.v1")
    with pytest.raises(AccessRefused, match="audit.identity.read"):
        publish_confirmed(gateway_uri, body, AUDIT_EXCHANGE, "audit.identity.read")


def test_an_audit_record_claiming_identity_sent_by_the_gateway_is_parked_never_stored(platform, gateway_uri):
    forged = record("identity")  # under the gateway's own routing key: the broker lets it through
    publish_confirmed(gateway_uri, forged, AUDIT_EXCHANGE, "audit.gateway.read")
    straight = record("identity")  # straight into the ingest queue through the default exchange
    publish_confirmed(gateway_uri, straight, "", INGEST)
    genuine = record("gateway")  # the gateway's own records still go in
    publish_confirmed(gateway_uri, genuine, AUDIT_EXCHANGE, "audit.gateway.read")

    wait_for(lambda: stored(platform, genuine["audit_id"]), timeout=30)

    def parked() -> dict:
        return {m.message_id: m for m in list_parked(platform.amqp_uri, INGEST)}

    found = wait_for(lambda: (lambda p: p if {forged["audit_id"], straight["audit_id"]} <= p.keys() else None)(
        parked()), timeout=30)
    for audit_id in (forged["audit_id"], straight["audit_id"]):
        assert found[audit_id].error and "NotTheSender" in found[audit_id].error
        assert not stored(platform, audit_id)
    assert ERROR_HEADER  # the reason travels in the parked message's header


def test_the_gateway_cannot_delete_the_audit_exchange_and_so_unbind_the_audit_log(gateway_uri):
    """Deleting ``audit`` would drop privacy's binding: every record after it would go unrouted."""
    for action in (lambda channel: channel.exchange_delete(AUDIT_EXCHANGE),
                   lambda channel: channel.exchange_delete(UNROUTED),
                   lambda channel: channel.queue_delete(UNROUTED)):
        refused = attempt(gateway_uri, action)
        assert isinstance(refused, AccessRefused), refused


def test_the_gateway_cannot_read_the_unrouted_queue(gateway_uri):
    assert queue_exists(gateway_uri, UNROUTED)
    refused = attempt(gateway_uri, lambda channel: channel.basic_consume(UNROUTED, callback=lambda m: None))
    assert isinstance(refused, AccessRefused), refused
    own = f"gateway.copy-{uuid.uuid4().hex[:8]}"  # a queue of its own, bound to the catch-all: refused too
    refused = attempt(gateway_uri, lambda channel: (channel.queue_declare(own, auto_delete=True),
                                                    channel.queue_bind(own, UNROUTED, "")))
    assert isinstance(refused, AccessRefused), refused


def test_the_unrouted_queue_is_bounded_by_its_policy(platform, admin_uri):
    vhost = quote(platform.vhost, safe="")
    queue = wait_for(lambda: _api("GET", f"/api/queues/{vhost}/{UNROUTED}").json().get("effective_policy_definition"),
                     timeout=15)
    expected = UNROUTED_POLICY["definition"]
    assert queue["message-ttl"] == expected["message-ttl"]
    assert queue["max-length"] == expected["max-length"]
    assert queue["overflow"] == "drop-head"
