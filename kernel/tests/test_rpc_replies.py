"""The ``rpc`` entrypoint's replies: one publisher per container, each reply serialized once, transient and
correlated as nameko's; a result that cannot be serialized answered as nameko answers it; a request's method
found without formatting every method's routing key."""

from __future__ import annotations

import importlib
import uuid
from types import SimpleNamespace

import kombu
import kombu.messaging
import kombu.serialization
import pytest
from kombu import Connection, Exchange, Queue
from nameko.exceptions import MethodNotFound
from upgestao_kernel.nameko_ext import rpc
from upgestao_kernel.testing import wait_for

RPC_EXCHANGE = Exchange("nameko-rpc", type="topic", durable=True)
kernel_rpc = importlib.import_module("upgestao_kernel.nameko_ext.rpc")


class AnswersService:
    name = "answers"

    @rpc
    def echo(self, value):
        return {"echo": value}

    @rpc
    def unserializable(self):
        return {"what": object()}


class Caller:
    """Requests published straight through kombu, replies read from a queue of the test's own."""

    def __init__(self, amqp_uri: str) -> None:
        self.connection = Connection(amqp_uri)
        self.channel = self.connection.channel()
        self.name = f"test-replies-{uuid.uuid4().hex}"
        self.replies = Queue(self.name, exchange=RPC_EXCHANGE, routing_key=self.name, exclusive=True,
                             auto_delete=True)(self.channel)
        self.replies.declare()
        self.producer = self.connection.Producer(self.channel)

    def send(self, method: str, *args) -> str:
        correlation_id = uuid.uuid4().hex
        self.producer.publish({"args": list(args), "kwargs": {}}, exchange=RPC_EXCHANGE,
                              routing_key=f"answers.{method}", serializer="json", reply_to=self.name,
                              correlation_id=correlation_id)
        return correlation_id

    def reply(self, correlation_id: str):
        message = wait_for(lambda: self.replies.get(no_ack=True), timeout=15)
        assert message.properties["correlation_id"] == correlation_id
        return message

    def close(self) -> None:
        self.connection.release()


@pytest.fixture
def answers(run_service, amqp_uri):
    run_service(AnswersService, lambda url: None)
    caller = Caller(amqp_uri)
    yield caller, run_service.started[-1][0]
    caller.close()


def test_replies_go_out_through_one_publisher_of_the_container_serialized_once(answers, monkeypatch):
    """nameko built a publisher and a kombu ``Connection`` for every reply (only to find the pooled producer),
    and serialized every result twice (a check, then the message)."""
    caller, container = answers
    consumer = next(e for e in container.extensions if isinstance(e, kernel_rpc.TransientRpcConsumer))
    publisher = consumer.reply_publisher
    assert caller.reply(caller.send("echo", "warm")).payload == {"result": {"echo": "warm"}, "error": None}

    built, serialized = [], []
    connection_init = kombu.Connection.__init__

    def counting_init(self, *args, **kwargs):
        built.append(args[:1])
        connection_init(self, *args, **kwargs)

    def counting(dumps):
        def spy(data, *args, **kwargs):
            if isinstance(data, dict) and ("result" in data or "echo" in data):
                serialized.append(data)
            return dumps(data, *args, **kwargs)
        return spy

    monkeypatch.setattr(kombu.Connection, "__init__", counting_init)
    monkeypatch.setattr(kombu.serialization, "dumps", counting(kombu.serialization.dumps))
    monkeypatch.setattr(kombu.messaging, "dumps", counting(kombu.messaging.dumps))
    for n in range(5):
        reply = caller.reply(caller.send("echo", n))
        assert reply.payload == {"result": {"echo": n}, "error": None}
        assert reply.properties["delivery_mode"] == 1  # transient, as ever
        assert reply.content_type == "application/json"
    assert built == []
    assert len(serialized) == 5
    assert consumer.reply_publisher is publisher


def test_a_result_that_cannot_be_serialized_is_answered_as_nameko_answers_it(answers):
    caller, _ = answers
    reply = caller.reply(caller.send("unserializable"))
    assert reply.payload["result"] is None
    assert reply.payload["error"]["exc_type"] == "UnserializableValueError"
    assert reply.payload["error"]["exc_path"] == "nameko.exceptions.UnserializableValueError"
    assert caller.reply(caller.send("echo", "after")).payload["result"] == {"echo": "after"}  # still serving


def test_a_method_the_service_does_not_have_is_answered_method_not_found(answers):
    caller, _ = answers
    error = caller.reply(caller.send("nothing_here")).payload["error"]
    assert error["exc_type"] == "MethodNotFound" and error["value"] == "nothing_here"


class Provider:
    def __init__(self, method_name: str) -> None:
        self.method_name = method_name


def test_the_entrypoint_of_a_routing_key_is_found_once_and_not_after_it_stopped(monkeypatch):
    from nameko.rpc import RpcConsumer

    scans = []
    scan = RpcConsumer.get_provider_for_method
    monkeypatch.setattr(RpcConsumer, "get_provider_for_method",
                        lambda self, routing_key: scans.append(routing_key) or scan(self, routing_key))
    consumer = kernel_rpc.TransientRpcConsumer()
    consumer.container = SimpleNamespace(service_name="answers")
    consumer._by_routing_key = {}
    echo, other = Provider("echo"), Provider("other")
    consumer._providers = {echo, other}
    for _ in range(3):
        assert consumer.get_provider_for_method("answers.echo") is echo
        assert consumer.get_provider_for_method("answers.other") is other
    assert scans == ["answers.echo", "answers.other"]  # nameko's scan of every method, once per key
    with pytest.raises(MethodNotFound):
        consumer.get_provider_for_method("answers.missing")
    with pytest.raises(MethodNotFound):
        consumer.get_provider_for_method("other-service.echo")
    consumer._providers = {other}  # echo's entrypoint stopped
    with pytest.raises(MethodNotFound):
        consumer.get_provider_for_method("answers.echo")
