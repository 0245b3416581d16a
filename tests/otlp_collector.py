"""An in-process OTLP/HTTP trace collector for the tests (issue 18).

A tiny HTTP server on 127.0.0.1 that takes what an OpenTelemetry exporter POSTs to ``/v1/traces``
(``ExportTraceServiceRequest`` protobufs, gzip or not), answers an empty ``ExportTraceServiceResponse``,
and decodes the requests with ``opentelemetry-proto`` only when a test asks (:meth:`OtlpCollector.spans`):
receiving stays cheap for a platform exporting the whole suite's spans. It keeps the newest
:data:`MAX_BYTES` of requests (the older are dropped), so a session's worth cannot grow without bound, and a
test decodes only what arrived since its :meth:`~OtlpCollector.mark` (a late test in a long session does not
decode the whole session's spans every time it looks).
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto

MAX_BYTES = 64 * 1024 * 1024
KINDS = {value: name.removeprefix("SPAN_KIND_").lower() for name, value in SpanProto.SpanKind.items()}


@dataclass(frozen=True)
class Span:
    service: str  # the resource's service.name: identity, identity-relay, gateway...
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root
    name: str
    kind: str  # server, client, producer, consumer, internal
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    status: int = 0  # 0 unset, 1 ok, 2 error


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def decode(body: bytes) -> list[Span]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: value_of(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                spans.append(Span(
                    service=str(resource.get("service.name", "")), trace_id=s.trace_id.hex(), span_id=s.span_id.hex(),
                    parent_id=s.parent_span_id.hex(), name=s.name, kind=KINDS.get(s.kind, str(s.kind)),
                    start_ns=s.start_time_unix_nano, end_ns=s.end_time_unix_nano,
                    attributes={kv.key: value_of(kv.value) for kv in s.attributes}, status=s.status.code))
    return spans


class OtlpCollector:
    """``with OtlpCollector() as collector:`` ``collector.endpoint`` is what ``OTEL_EXPORTER_OTLP_ENDPOINT`` takes."""

    def __init__(self) -> None:
        self._bodies: deque[tuple[int, bytes]] = deque()  # (the request's number, its body)
        self._size = 0
        self._lock = threading.Lock()
        self.requests = 0
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if self.path.rstrip("/") != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                collector._keep(body)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-collector", daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> OtlpCollector:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _keep(self, body: bytes) -> None:
        with self._lock:
            self._bodies.append((self.requests, body))
            self.requests += 1
            self._size += len(body)
            while self._size > MAX_BYTES and len(self._bodies) > 1:
                self._size -= len(self._bodies.popleft()[1])

    def mark(self) -> int:
        """Where the spans exported from now on begin (for :meth:`spans`)."""
        with self._lock:
            return self.requests

    def spans(self, since: int = 0) -> list[Span]:
        """The spans received (and still kept), or those received since ``since`` (a :meth:`mark`)."""
        with self._lock:
            bodies = [body for number, body in self._bodies if number >= since]
        return [span for body in bodies for span in decode(body)]

    def trace(self, trace_id: str, since: int = 0) -> list[Span]:
        return [s for s in self.spans(since) if s.trace_id == trace_id]

    def wait_for(self, found: Callable[[list[Span]], Any], timeout_s: float = 15.0, interval_s: float = 0.2,
                 since: int = 0) -> Any:
        """``found(spans)`` (those received since ``since``) once it is truthy (spans arrive in batches, every
        ``OTEL_BSP_SCHEDULE_DELAY``); ``AssertionError`` with what arrived when ``timeout_s`` passes first."""
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.spans(since)
            result = found(spans)
            if result:
                return result
            if time.monotonic() >= deadline:
                raise AssertionError(f"not found within {timeout_s} s among {len(spans)} spans")
            time.sleep(interval_s)


def span_tree(spans: Iterable[Span]) -> list[str]:
    """The spans of one trace as an indented tree, one line each: ``service  name  (kind)``, children after
    their parent in start order; a span whose parent did not arrive shown as a root (marked)."""
    spans = sorted(spans, key=lambda s: s.start_ns)
    ids = {s.span_id for s in spans}
    children: dict[str, list[Span]] = {}
    roots = []
    for s in spans:
        if s.parent_id and s.parent_id in ids:
            children.setdefault(s.parent_id, []).append(s)
        else:
            roots.append(s)
    start = spans[0].start_ns if spans else 0
    lines: list[str] = []

    def walk(s: Span, depth: int) -> None:
        orphan = " [parent not received]" if depth == 0 and s.parent_id else ""
        offset_ms = (s.start_ns - start) / 1e6
        duration_ms = (s.end_ns - s.start_ns) / 1e6
        lines.append(f"{'  ' * depth}{s.service:<17} {s.name}  ({s.kind}, +{offset_ms:.1f} ms, "
                     f"{duration_ms:.1f} ms){orphan}")
        for child in children.get(s.span_id, []):
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    return lines
