"""The gateway's request span (issue 18): a client's ``traceparent`` is believed only from a trusted proxy.

A client reaching the gateway directly must not choose its trace id or force sampling; the ingress, named in
``GATEWAY_TRUSTED_PROXIES``, may hand its own trace on."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from upgestao_gateway.entrypoints.http.tracing import request_span
from upgestao_kernel import tracing

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_PARENT = f"00-{CLIENT_TRACE}-b7ad6b7169203331-01"


@pytest.fixture
def exported(monkeypatch):
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "gateway"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_enabled", True)
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    yield exporter
    provider.shutdown()


def one_request(exported, *, continue_client: bool):
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/v1/me", "HTTP_TRACEPARENT": CLIENT_PARENT}
    with request_span(environ, "req-1", continue_client=continue_client):
        pass
    (span,) = exported.get_finished_spans()
    return span


def test_a_direct_client_s_traceparent_starts_no_trace_of_its_choosing(exported):
    span = one_request(exported, continue_client=False)
    assert format(span.context.trace_id, "032x") != CLIENT_TRACE
    assert span.parent is None


def test_a_trusted_proxy_s_traceparent_is_continued(exported):
    span = one_request(exported, continue_client=True)
    assert format(span.context.trace_id, "032x") == CLIENT_TRACE
    assert span.parent is not None and format(span.parent.span_id, "016x") == "b7ad6b7169203331"
