"""An RPC request is run at most once (issue 9: the chaos suite found a read audited twice).

A service killed after it replied but before it acknowledged the request gets the
request back from the broker, flagged ``redelivered``; running it again repeated its
effects and its audit records. Here the first delivery goes to a consumer that
disappears without acknowledging it (as a killed service does), and the service
that receives it again must answer "outcome unknown" (503) without running it.
"""

from __future__ import annotations

import importlib
import json
import uuid

import pytest
import sqlalchemy as sa
from kernel_sample import create_sample_tables
from kernel_sample_services import LedgerService
from kombu import Connection, Exchange, Queue
from upgestao_kernel.db import create_engine
from upgestao_kernel.testing import wait_for

RPC_EXCHANGE = Exchange("nameko-rpc", type="topic", durable=True)


def reads_audited(url: str, account_id: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT body FROM outbox WHERE exchange = 'audit'")).scalars().all()
    finally:
        engine.dispose()
    records = [json.loads(body) if isinstance(body, str) else body for body in rows]
    return sum(r.get("action") == "read" and r.get("subject_id") == account_id for r in records)


@pytest.fixture
def ledger(run_service, database_factory):
    url = database_factory("ledger")
    create_sample_tables(url)
    proxy = run_service(LedgerService, None, database_url=url)
    return proxy, url


def test_a_request_delivered_again_is_answered_as_interrupted_never_run_twice(ledger, run_service, amqp_uri):
    proxy, url = ledger
    proxy.open_account("acc-1", "someone@example.com")
    assert proxy.read_email("acc-1") == "someone@example.com"
    assert reads_audited(url, "acc-1") == 1
    # the service goes away; its durable request queue stays
    container, proxy_ctx = run_service.started[0]
    proxy_ctx.stop()
    container.stop()

    correlation_id = uuid.uuid4().hex
    with Connection(amqp_uri) as conn:
        channel = conn.channel()
        name = f"test-replies-{correlation_id}"  # nameko replies on its exchange, routed by reply_to
        replies = Queue(name, exchange=RPC_EXCHANGE, routing_key=name, exclusive=True, auto_delete=True)
        replies(channel).declare()
        conn.Producer(channel).publish(
            {"args": ["acc-1"], "kwargs": {}}, exchange=RPC_EXCHANGE, routing_key="ledger.read_email",
            serializer="json", reply_to=replies.name, correlation_id=correlation_id)
        # a consumer takes it and dies without acknowledging it (the broker requeues it, redelivered)
        doomed = Connection(amqp_uri)
        taken = Queue("rpc-ledger", exchange=RPC_EXCHANGE, routing_key="ledger.*", durable=True)(doomed.channel())
        message = wait_for(lambda: taken.get(no_ack=False), timeout=10)
        assert not message.delivery_info.get("redelivered")
        doomed.release()

        # the service restarts and receives it again
        run_service(LedgerService, None, database_url=url)
        reply_queue = replies(channel)
        reply = wait_for(lambda: reply_queue.get(no_ack=True), timeout=15)
        assert reply.properties["correlation_id"] == correlation_id
        error = reply.payload["error"]
        assert error["exc_type"] == "ServiceError" and "outcome is unknown" in error["value"], error
    assert reads_audited(url, "acc-1") == 1  # not run again: no second read, no second audit record
    # a fresh request is served as usual
    assert run_service.started[-1][1].start().read_email("acc-1") == "someone@example.com"
    assert reads_audited(url, "acc-1") == 2


def test_a_reply_the_broker_cannot_take_does_not_kill_the_service(ledger, run_service, amqp_uri, monkeypatch):
    """The broker goes away while a reply is being published (a restart). nameko let that error
    kill the whole service (identity exited 1 at every broker stop of the chaos suite); now the
    service lives on, and the unacknowledged request, delivered again, is answered as interrupted."""
    from kombu.exceptions import OperationalError as KombuOperationalError
    # the module (the package exports the decorator under the same name)
    kernel_rpc = importlib.import_module("upgestao_kernel.nameko_ext.rpc")

    proxy, url = ledger
    proxy.open_account("acc-2", "other@example.com")
    publish = kernel_rpc.TransientPublisher.publish
    failed = []

    def publish_once_failing(self, payload, **kwargs):
        if not failed and kwargs.get("routing_key", "").startswith("test-replies-"):
            failed.append(kwargs["correlation_id"])
            raise KombuOperationalError("[Errno 111] ECONNREFUSED")
        return publish(self, payload, **kwargs)

    monkeypatch.setattr(kernel_rpc.TransientPublisher, "publish", publish_once_failing)
    correlation_id = uuid.uuid4().hex
    with Connection(amqp_uri) as conn:
        channel = conn.channel()
        name = f"test-replies-{correlation_id}"
        replies = Queue(name, exchange=RPC_EXCHANGE, routing_key=name, exclusive=True, auto_delete=True)
        replies(channel).declare()
        conn.Producer(channel).publish(
            {"args": ["acc-2"], "kwargs": {}}, exchange=RPC_EXCHANGE, routing_key="ledger.read_email",
            serializer="json", reply_to=name, correlation_id=correlation_id)
        wait_for(lambda: failed == [correlation_id], timeout=10)
        container, proxy_ctx = run_service.started[0]
        assert proxy.health()["status"] == "ok"  # still serving
        assert proxy.read_email("acc-2") == "other@example.com"
        # it stops (the broker takes the unacknowledged request back) and starts again
        proxy_ctx.stop()
        container.stop()
        run_service(LedgerService, None, database_url=url)
        reply = wait_for(lambda: replies(channel).get(no_ack=True), timeout=15)
        assert reply.properties["correlation_id"] == correlation_id
        assert "outcome is unknown" in reply.payload["error"]["value"]


def test_an_ack_the_broker_cannot_take_does_not_kill_the_service(ledger, run_service, monkeypatch):
    """A moment later in the same outage: the reply went out, the ack meets a reset connection
    (identity exited 1 in the 30-minute chaos run). The service lives on."""
    from nameko.messaging import QueueConsumer

    proxy, _url = ledger
    proxy.open_account("acc-3", "third@example.com")
    ack = QueueConsumer.ack_message
    failed = []

    def ack_once_failing(self, message):
        if not failed and message.delivery_info.get("routing_key") == "ledger.read_email":
            failed.append(message.properties.get("correlation_id"))
            raise ConnectionResetError(104, "Connection reset by peer")
        return ack(self, message)

    monkeypatch.setattr(QueueConsumer, "ack_message", ack_once_failing)
    assert proxy.read_email("acc-3") == "third@example.com"  # the reply was sent before the ack
    wait_for(lambda: failed, timeout=10)  # the ack (patched to fail) comes just after the reply
    assert proxy.health()["status"] == "ok"  # still serving
    assert proxy.read_email("acc-3") == "third@example.com"
