"""Traces (issue 18): the kernel's hooks, off and on, without a broker or a database.

On, spans go to an in-memory exporter (the module's tracer swapped for the test); the process-wide set-up
(:func:`configure_tracing`: the SDK provider, the OTLP exporter, ``service.name``) is checked in a child
interpreter, since a process sets its tracer provider once.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from upgestao_kernel import tracing
from upgestao_kernel.config import ConfigError
from upgestao_kernel.context import system_context
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.logging import configure_logging, get_logger
from upgestao_kernel.outbox import message_headers

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
PARENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN = "b7ad6b7169203331"


@pytest.fixture
def exported(monkeypatch):
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_enabled", True)
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    yield exporter
    provider.shutdown()


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


# -- the setting -------------------------------------------------------------------------------------------

def test_off_unless_an_endpoint_is_set():
    assert tracing.tracing_endpoint({}) is None
    assert tracing.tracing_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}) is None
    assert tracing.tracing_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}) == "http://127.0.0.1:4318"
    assert tracing.tracing_endpoint({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://c.example:4318/v1/traces"})
    disabled = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}
    assert tracing.tracing_endpoint(disabled) is None


def test_spans_go_to_the_traces_path_of_the_endpoint_or_to_the_traces_endpoint_as_given():
    base = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}
    assert tracing.traces_url(base, tracing.tracing_endpoint(base)) == "http://c:4318/v1/traces"
    own = {**base, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4318/custom"}
    assert tracing.traces_url(own, tracing.tracing_endpoint(own)) == "http://t:4318/custom"


@pytest.mark.parametrize(("environ", "variable"), [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "grpc://c:4317"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:99999"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://c"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
     "OTEL_EXPORTER_OTLP_PROTOCOL"),
])
def test_a_wrong_setting_is_a_config_error_naming_the_variable(environ, variable):
    with pytest.raises(ConfigError) as caught:
        tracing.tracing_endpoint(environ)
    assert caught.value.variable == variable


def test_configured_process_exports_as_its_own_service_name():
    """In a child interpreter: the SDK's provider with the process's ``service.name`` (not
    ``OTEL_SERVICE_NAME``, one environment being every process's), a batch processor, the OTLP/HTTP exporter."""
    code = (
        "import os, sys\n"
        "from opentelemetry import trace\n"
        "from upgestao_kernel import tracing\n"
        "assert tracing.configure_tracing('identity', 'relay', os.environ)\n"
        "provider = trace.get_tracer_provider()\n"
        "processor = provider._active_span_processor._span_processors[0]\n"
        "exporter = processor._batch_processor._exporter\n"
        "print(provider.resource.attributes['service.name'], type(processor).__name__,\n"
        "      type(exporter).__name__, exporter._endpoint)\n"
    )
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SERVICE_NAME": "wrong"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["identity-relay", "BatchSpanProcessor", "OTLPSpanExporter",
                                  "http://127.0.0.1:9/v1/traces"]


def test_off_nothing_is_installed_and_every_hook_is_inert():
    assert not tracing.enabled()
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)  # the API's proxy: no SDK
    with tracing.span("x") as span:
        assert span is None
    with tracing.entry_span("x", SpanKind.SERVER, {"traceparent": PARENT}) as span:
        assert span is None
    assert tracing.context_headers() == {}
    assert message_headers(system_context("req-1")) == {
        "nameko.request_id": "req-1", "nameko.actor_id": "system", "nameko.actor_role": "system",
        "nameko.correlation_id": "req-1"}
    assert tracing.publish_spans() is None
    assert tracing.rpc_client_call("identity", "ping", {}) is None
    with tracing.consuming([SimpleNamespace(properties={})], "q"):
        pass
    assert tracing.add_trace_ids(None, "info", {"event": "x"}) == {"event": "x"}


# -- spans ---------------------------------------------------------------------------------------------------

def test_an_entry_span_continues_the_traceparent_it_is_given(exported):
    with tracing.entry_span("identity/create_customer", SpanKind.SERVER, {"traceparent": PARENT},
                            attributes={"rpc.method": "create_customer", "none": None}) as server:
        with tracing.span("eventstore.append") as append:
            headers = message_headers(system_context("req-1"))
    spans = {s.name: s for s in exported.get_finished_spans()}
    assert _hex(spans["identity/create_customer"].context.trace_id, 32) == PARENT_TRACE
    assert _hex(spans["identity/create_customer"].parent.span_id, 16) == PARENT_SPAN
    assert spans["identity/create_customer"].kind is SpanKind.SERVER
    assert dict(spans["identity/create_customer"].attributes) == {"rpc.method": "create_customer"}
    assert spans["eventstore.append"].parent.span_id == server.get_span_context().span_id
    # the outbox row carries the span current when it was queued: the relay continues from it
    trace_id, span_id = _hex(append.get_span_context().trace_id, 32), _hex(append.get_span_context().span_id, 16)
    assert headers["nameko.traceparent"] == f"00-{trace_id}-{span_id}-01"


def test_no_trace_no_child_span_and_a_bad_traceparent_starts_a_new_trace(exported):
    with tracing.span("eventstore.append") as span:
        assert span is None  # work nobody traced opens no trace of its own
    with tracing.entry_span("q", SpanKind.CONSUMER, {"traceparent": "00-nonsense"}):
        pass
    (consumer,) = exported.get_finished_spans()
    assert consumer.parent is None


def test_an_error_is_its_class_name_only_and_a_client_mistake_is_no_error(exported):
    with pytest.raises(RuntimeError), tracing.entry_span("a", SpanKind.SERVER):
        raise RuntimeError("the e-mail maria@example.com is wrong")
    with pytest.raises(ServiceError), tracing.entry_span("b", SpanKind.SERVER):
        raise ServiceError("conflict", "Maria exists", 409)
    failed, refused = exported.get_finished_spans()
    assert failed.status.status_code is StatusCode.ERROR and failed.status.description == "RuntimeError"
    assert failed.attributes["error.type"] == "RuntimeError" and not failed.events  # no message, no traceback
    assert refused.status.status_code is StatusCode.UNSET and refused.attributes["error.type"] == "ServiceError"


def test_rpc_client_call_writes_its_own_traceparent(exported):
    headers = {"nameko.traceparent": PARENT}  # the one the worker received
    with tracing.entry_span("gateway", SpanKind.SERVER):
        call = tracing.rpc_client_call("identity", "create_customer", headers)
    call.end(error_type="timeout")
    call.end()  # once
    client = next(s for s in exported.get_finished_spans() if s.kind is SpanKind.CLIENT)
    assert client.name == "identity/create_customer"
    assert headers["nameko.traceparent"].split("-")[2] == _hex(client.context.span_id, 16)
    assert client.status.status_code is StatusCode.ERROR and client.attributes["error.type"] == "timeout"
    # outside any span: the child of the traceparent the worker's context data gave the headers, else none
    spawned = {"nameko.traceparent": PARENT}
    tracing.rpc_client_call("identity", "health", spawned).end()
    assert _hex(exported.get_finished_spans()[-1].parent.span_id, 16) == PARENT_SPAN
    untraced: dict = {}
    assert tracing.rpc_client_call("identity", "health", untraced) is None and untraced == {}
    # the same for a call made and awaited in a block (nameko's proxies)
    with tracing.rpc_client_span("identity", "directory", {"traceparent": PARENT}) as span:
        assert _hex(span.get_span_context().trace_id, 32) == PARENT_TRACE
    with tracing.rpc_client_span("identity", "health", {}) as span:
        assert span is None


def test_the_relay_publishes_a_traced_row_under_a_producer_span(exported):
    publishing = tracing.publish_spans()
    stored = {"nameko.request_id": "req-1", "nameko.traceparent": PARENT}
    headers = publishing.headers(1, "identity.events", "identity.customer_registered.v1", "m-1", stored)
    assert publishing.headers(2, "audit", "audit.identity.read", "m-2", {"nameko.request_id": "req-2"}) is None
    failed = publishing.headers(3, "audit", "audit.identity.read", "m-3", stored)
    publishing.end([1])
    ok, unconfirmed = exported.get_finished_spans()
    assert ok.name == "publish identity.events" and ok.kind is SpanKind.PRODUCER
    assert _hex(ok.parent.span_id, 16) == PARENT_SPAN
    assert ok.attributes["messaging.message.id"] == "m-1"
    own = f"00-{PARENT_TRACE}-{_hex(ok.context.span_id, 16)}-01"
    assert headers == {"nameko.request_id": "req-1", "nameko.traceparent": own}
    assert stored["nameko.traceparent"] == PARENT  # the row's own headers untouched
    assert failed["nameko.traceparent"] != headers["nameko.traceparent"]
    assert unconfirmed.status.status_code is StatusCode.ERROR


def test_a_batch_is_one_consumer_span_per_message_each_in_its_own_trace(exported):
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    messages = [SimpleNamespace(properties={"application_headers": {"nameko.traceparent": PARENT}, "message_id": "a"}),
                SimpleNamespace(properties={"application_headers": {"nameko.traceparent": other}, "message_id": "b"}),
                SimpleNamespace(properties={"message_id": "c"})]
    with pytest.raises(OSError), tracing.consuming(messages, "privacy.audit-ingest"):
        raise OSError("database away")
    spans = exported.get_finished_spans()
    assert [s.name for s in spans] == ["process privacy.audit-ingest"] * 3
    assert [_hex(s.context.trace_id, 32) for s in spans[:2]] == [PARENT_TRACE, "1" * 32]
    assert spans[2].parent is None
    assert all(s.status.status_code is StatusCode.ERROR for s in spans)


def test_log_lines_say_the_current_trace(exported):
    stream = io.StringIO()
    configure_logging("identity", "INFO", stream, trace_ids=True)
    try:
        with tracing.entry_span("x", SpanKind.SERVER) as span:
            get_logger("t").info("inside", request_id="req-1")
            logging.getLogger("nameko.test").info("stdlib inside")
        get_logger("t").info("outside")
    finally:
        configure_logging("identity", "INFO", io.StringIO())
    inside, stdlib, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    context = span.get_span_context()
    assert inside["trace_id"] == stdlib["trace_id"] == _hex(context.trace_id, 32)
    assert inside["span_id"] == _hex(context.span_id, 16) and inside["request_id"] == "req-1"
    assert "trace_id" not in outside


# -- nameko ---------------------------------------------------------------------------------------------------

def test_a_worker_runs_in_the_span_of_its_entrypoint(exported):
    from nameko.rpc import Rpc
    from upgestao_kernel.events import EventEnvelope  # noqa: F401  (an envelope's attributes, below)
    from upgestao_kernel.nameko_ext.entrypoints import ReliableEventHandler
    from upgestao_kernel.nameko_ext.tracing import worker_scope

    rpc = object.__new__(Rpc)
    rpc.method_name = "create_customer"
    handler = object.__new__(ReliableEventHandler)
    handler.method_name = "on_identity_event"
    handler.container = SimpleNamespace(service_name="privacy")
    event = SimpleNamespace(event_id="e-1", type="identity.customer_registered.v1")
    timer = SimpleNamespace(method_name="sweep")

    def ctx(entrypoint, data, args=()):
        return SimpleNamespace(entrypoint=entrypoint, data=data, args=args)

    with worker_scope("identity", ctx(rpc, {"traceparent": PARENT, "request_id": "req-1"})) as server:
        assert server is not None
    with worker_scope("privacy", ctx(handler, {"traceparent": PARENT}, (event,))):
        pass
    health = object.__new__(Rpc)
    health.method_name = "health"
    with worker_scope("identity", ctx(health, {})) as none:
        assert none is None  # a readiness poll is no trace
    with worker_scope("gateway", ctx(timer, {"traceparent": PARENT})) as none:
        assert none is None
        assert _hex(trace.get_current_span().get_span_context().trace_id, 32) == PARENT_TRACE  # continued
    server_span, consumer = exported.get_finished_spans()
    assert (server_span.name, server_span.kind) == ("identity/create_customer", SpanKind.SERVER)
    assert server_span.attributes["upgestao.request_id"] == "req-1"
    assert (consumer.name, consumer.kind) == ("process privacy.on_identity_event", SpanKind.CONSUMER)
    assert consumer.attributes["messaging.message.id"] == "e-1"
    assert consumer.attributes["messaging.rabbitmq.destination.routing_key"] == "identity.customer_registered.v1"
