"""Every publish carries its connection's ``user_id`` on the real broker (issue 11, finding 1): a kombu
producer, a py-amqp channel in confirm mode (the relay's and the confirmed publishers' path), an RPC
request and its reply; and a message naming another user is refused by RabbitMQ."""

from __future__ import annotations

import uuid

import amqp
import pytest
import upgestao_kernel.nameko_ext  # noqa: F401  (a standalone proxy names its reply queue after its service)
from amqp.exceptions import PreconditionFailed
from kombu import Connection, Exchange, Queue
from nameko.rpc import rpc
from nameko.standalone.rpc import ServiceRpcProxy
from upgestao_kernel.broker_identity import broker_user
from upgestao_kernel.testing import service_amqp_uri, wait_for

EXCHANGE = "nameko-rpc"  # a topic exchange every service may publish to and bind its reply keys from


def _listen(admin_uri: str, routing_key: str):
    """A queue of the administrator's, bound for ``routing_key`` on nameko-rpc; returns a getter."""
    conn = Connection(admin_uri)
    queue = Queue(f"stamp-{uuid.uuid4().hex[:8]}", Exchange(EXCHANGE, type="topic", durable=True),
                  routing_key=routing_key, auto_delete=True, channel=conn.channel())
    queue.declare()
    return conn, queue


def test_a_kombu_producer_and_a_confirmed_amqp_channel_stamp_their_user(amqp_uri, amqp_vhost):
    as_identity = service_amqp_uri(amqp_uri, "identity")
    key = str(uuid.uuid4())  # identity may publish any key on nameko-rpc (a reply's)
    conn, queue = _listen(amqp_uri, key)
    try:
        with Connection(as_identity, transport_options={"confirm_publish": True}) as producer_conn:
            producer_conn.Producer().publish({"via": "kombu"}, exchange=EXCHANGE, routing_key=key, serializer="json")
            channel = producer_conn.channel()
            channel.confirm_select()
            channel.basic_publish_confirm(amqp.Message(b'{"via": "amqp"}', content_type="application/json"),
                                          exchange=EXCHANGE, routing_key=key)
        received = [wait_for(lambda: queue.get(no_ack=True)) for _ in range(2)]
    finally:
        queue.delete()
        conn.release()
    assert {m.payload["via"] for m in received} == {"kombu", "amqp"}
    assert {m.properties["user_id"] for m in received} == {broker_user("identity", amqp_vhost)}


def test_a_message_naming_another_user_is_refused_by_the_broker(amqp_uri, amqp_vhost):
    conn, queue = _listen(amqp_uri, "any")  # (declares nameko-rpc)
    queue.delete()
    conn.release()
    with Connection(service_amqp_uri(amqp_uri, "notifier")) as conn:
        channel = conn.channel()
        channel.confirm_select()
        with pytest.raises(PreconditionFailed, match="user_id"):
            channel.basic_publish_confirm(amqp.Message(b"{}", user_id=broker_user("identity", amqp_vhost)),
                                          exchange=EXCHANGE, routing_key=str(uuid.uuid4()))


class Echo:
    name = "echo"

    @rpc
    def whoami(self) -> str:
        return "echo"


def test_an_rpc_request_and_its_reply_carry_their_senders_users(amqp_uri, amqp_vhost):
    from nameko.containers import ServiceContainer

    container = ServiceContainer(Echo, {"AMQP_URI": service_amqp_uri(amqp_uri, "echo"), "serializer": "json"})
    container.start()
    conn, requests = _listen(amqp_uri, "echo.whoami")  # a copy of every request, for the test to read
    try:
        as_gateway = {"AMQP_URI": service_amqp_uri(amqp_uri, "gateway"), "serializer": "json"}
        proxy = ServiceRpcProxy("echo", as_gateway, timeout=10)
        with proxy as echo:
            listener = proxy._reply_listener
            assert listener.queue.name.startswith("rpc.reply-gateway-")  # the gateway's own name, none shared
            replies_conn, replies = _listen(amqp_uri, listener.routing_key)
            try:
                assert echo.whoami() == "echo"
                reply = wait_for(lambda: replies.get(no_ack=True))
            finally:
                replies.delete()
                replies_conn.release()
        request = wait_for(lambda: requests.get(no_ack=True))
    finally:
        requests.delete()
        conn.release()
        container.stop()
    assert request.properties["user_id"] == broker_user("gateway", amqp_vhost)
    assert reply.properties["user_id"] == broker_user("echo", amqp_vhost)
