"""The gateway's RPC transport (entrypoints.nameko_rpc) on the real broker: calls answer with their context,
a service no one serves is unavailable at once, a late reply is dropped, and replies are consumed without
acknowledgements (one write to the broker fewer per call) while the service's own RPC queue still acknowledges."""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

import eventlet
import pytest
from nameko.containers import ServiceContainer, WorkerContext
from nameko.extensions import DependencyProvider, Entrypoint
from nameko.rpc import rpc
from upgestao_gateway.adapters.rpc import RpcTimeout, RpcUnavailable
from upgestao_gateway.entrypoints.dependencies import Rpc
from upgestao_gateway.entrypoints.nameko_rpc import NOT_LISTENING
from upgestao_kernel.testing import _api, wait_for


class WorkerData(DependencyProvider):
    def get_dependency(self, worker_ctx):
        return worker_ctx.data


class EchoService:
    name = "echo"
    data = WorkerData()

    @rpc
    def context(self, value=None) -> dict:
        return {"value": value, "data": {k: v for k, v in self.data.items() if isinstance(v, str)}}

    @rpc
    def sleep(self, seconds: float, value: str) -> str:
        eventlet.sleep(seconds)
        return value


class CallerService:
    name = "caller"
    calls = Rpc(timeout_s=5.0, retry_budget_s=0.0)

    @rpc
    def health(self) -> str:  # an RPC entrypoint of its own: its queue's consumer acknowledges
        return "ok"


class _Request:
    idempotency_base = None


@pytest.fixture
def caller(amqp_uri):
    config = {"AMQP_URI": amqp_uri, "serializer": "json"}
    containers = [ServiceContainer(EchoService, config), ServiceContainer(CallerService, config)]
    for container in containers:
        container.start()
    caller_container = containers[1]
    provider = next(d for d in caller_container.dependencies if isinstance(d, Rpc))

    def client(context_data: dict | None = None, request=None):
        worker_ctx = WorkerContext(caller_container, caller_container.service_cls(), Entrypoint(),
                                   args=(request or _Request(),), data=context_data or {})
        return provider.get_dependency(worker_ctx)

    client.listener = provider.reply_listener
    yield client
    for container in reversed(containers):
        container.kill()


def _consumers(amqp_uri: str) -> list[dict]:
    vhost = unquote(urlsplit(amqp_uri).path[1:])
    return _api("GET", f"/api/consumers/{quote(vhost, safe='')}").json()


def test_a_call_answers_with_the_workers_context_and_its_key(caller):
    class Keyed:
        idempotency_base = "user-1:key-12345678"

    answer = caller({"request_id": "req-12345678", "actor_id": "user-1"}, Keyed()).echo.context("v")
    assert answer["value"] == "v"
    assert answer["data"]["request_id"] == "req-12345678"
    assert answer["data"]["actor_id"] == "user-1"
    assert answer["data"]["idempotency_key"] == "user-1:key-12345678:echo.context#1"
    assert caller.listener._reply_events == {}


def test_concurrent_calls_each_get_their_own_answer(caller):
    client = caller({"request_id": "req-concurrent"})
    values = [f"v{i}" for i in range(200)]
    answers = list(eventlet.GreenPool(50).imap(lambda v: client.echo.context(v)["value"], values))
    assert answers == values
    assert caller.listener._reply_events == {}


def test_a_service_no_one_serves_is_unavailable_at_once_and_leaves_nothing_waiting(caller):
    with pytest.raises(RpcUnavailable) as raised:
        caller().call("nobody", "health", timeout=5)
    assert raised.value.reason == NOT_LISTENING
    assert caller.listener._reply_events == {}


def test_a_late_reply_is_dropped_and_the_next_call_gets_its_own(caller):
    client = caller()
    with pytest.raises(RpcTimeout):
        client.call("echo", "sleep", 0.5, "late", timeout=0.1)
    assert caller.listener._reply_events == {}
    eventlet.sleep(0.6)  # the late reply arrives meanwhile, and is dropped
    assert client.call("echo", "sleep", 0.0, "on time") == "on time"


def test_replies_are_consumed_without_acknowledgements_and_rpc_requests_with(caller, amqp_uri):
    assert caller().echo.context("x")["value"] == "x"

    def by_queue() -> dict[str, bool]:
        return {c["queue"]["name"]: c["ack_required"] for c in _consumers(amqp_uri)}

    wait_for(lambda: any(name.startswith("rpc.reply-caller") for name in by_queue()), timeout=10, interval=0.2)
    consumers = by_queue()
    replies = {name: ack for name, ack in consumers.items() if name.startswith("rpc.reply-caller")}
    assert list(replies.values()) == [False], consumers
    assert consumers["rpc-caller"] is True
    assert consumers["rpc-echo"] is True
