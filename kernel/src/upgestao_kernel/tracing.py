"""Traces (issue 18): OpenTelemetry spans from the gateway through every RPC, event, relay publish and consumer.

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set. Off, nothing of the SDK is installed (the API's no-op
tracer stays the global one) and every hook below returns at its first line (a module flag): no span, no
header, no log field. On (:func:`configure_tracing`, called by ``run`` and ``relay`` before anything starts),
the process gets a tracer provider with a ``BatchSpanProcessor`` and the OTLP/HTTP (protobuf) exporter, both
reading the standard variables (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``..._TRACES_ENDPOINT``, ``..._HEADERS``,
``..._TIMEOUT``, ``..._COMPRESSION``, ``OTEL_BSP_*``, ``OTEL_TRACES_SAMPLER``/``_ARG``,
``OTEL_RESOURCE_ATTRIBUTES``); ``service.name`` is the process's own (``identity``, ``identity-relay``),
whatever ``OTEL_SERVICE_NAME`` says, since one environment is handed to every process.

How a trace travels (the W3C ``traceparent``, and ``tracestate`` when there is one):

* as a key of nameko's context data, the way the request id travels: the message headers
  ``nameko.traceparent`` of every RPC request and every relayed message;
* with each outbox row (its ``headers`` column, beside the request context; no schema change), written by the
  span current when the row is queued: the relay continues the trace from it (a producer span per row, the
  message published with the producer span's ``traceparent``) and the consumer from the message.

No span attribute ever holds personal data: span names are route templates, ``<service>/<method>``,
``<operation> <queue or exchange>``; attributes are methods, routes, status codes, exchange and queue names,
event types, ids (request, event, message) and counts. An exception is recorded as its class name only
(``error.type``), never its message, which may quote a value (see :mod:`upgestao_kernel.logging`).
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .config import ConfigError

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
HEADER_PREFIX = "nameko."  # context data travels as nameko.<key> headers
ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACES_ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
_PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
TRACER_NAME = "upgestao"

SERVER, CLIENT, PRODUCER, CONSUMER, INTERNAL = (SpanKind.SERVER, SpanKind.CLIENT, SpanKind.PRODUCER,
                                                SpanKind.CONSUMER, SpanKind.INTERNAL)

_enabled = False
_tracer: trace.Tracer = trace.NoOpTracer()
_provider: Any = None
_propagator = TraceContextTextMapPropagator()
_NULL = contextlib.nullcontext()


def enabled() -> bool:
    """Whether this process exports traces."""
    return _enabled


def tracing_endpoint(environ: Mapping[str, str]) -> str | None:
    """Where spans go (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` before ``OTEL_EXPORTER_OTLP_ENDPOINT``), validated;
    ``None``: tracing is off. Raises :class:`ConfigError` naming the variable."""
    endpoint = None
    for variable in (TRACES_ENDPOINT_VARIABLE, ENDPOINT_VARIABLE):
        value = (environ.get(variable) or "").strip()
        if not value:
            continue
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(variable, "must be an http:// or https:// URL of an OTLP/HTTP collector "
                                        "(e.g. http://127.0.0.1:4318)")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ConfigError(variable, "has an invalid port") from None
        endpoint = endpoint or value
    if endpoint is None:
        return None
    if (environ.get("OTEL_SDK_DISABLED") or "").strip().lower() == "true":
        return None
    for variable in _PROTOCOLS:
        protocol = (environ.get(variable) or "").strip()
        if protocol and protocol != "http/protobuf":
            raise ConfigError(variable, f"{protocol!r} is not supported: traces are exported as http/protobuf")
    return endpoint


def traces_url(environ: Mapping[str, str], endpoint: str) -> str:
    """Where spans are posted: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` as given, else
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/traces`` (the specification's rule)."""
    if (environ.get(TRACES_ENDPOINT_VARIABLE) or "").strip() == endpoint:
        return endpoint
    return endpoint.rstrip("/") + "/v1/traces"


def process_name(service: str, process: str) -> str:
    """``service.name`` of a process: ``identity`` (its ``run``), ``identity-relay``."""
    return service if process == "run" else f"{service}-{process}"


def configure_tracing(service: str, process: str, environ: Mapping[str, str]) -> bool:
    """Install the SDK for this process when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the traces endpoint) is set;
    returns whether tracing is on. Raises :class:`ConfigError` for a wrong setting (before anything starts)."""
    global _enabled, _tracer, _provider
    endpoint = tracing_endpoint(environ)
    if endpoint is None:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": process_name(service, process), "service.namespace": "upgestao",
                                "upgestao.service": service, "upgestao.process": process})
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    # the endpoint validated here; the exporter's other settings (headers, timeout, compression, TLS) and the
    # processor's (OTEL_BSP_*) from the process's environment, as the SDK reads them
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(environ, endpoint))))
    trace.set_tracer_provider(provider)
    _provider = provider
    _tracer = provider.get_tracer(TRACER_NAME)
    _enabled = True
    atexit.register(shutdown_tracing)
    return True


SHUTDOWN_WAIT_S = 3.0


def shutdown_tracing(wait_s: float = SHUTDOWN_WAIT_S) -> None:
    """Export what is pending (at exit), waiting at most ``wait_s``: a collector away would otherwise hold a
    stopping process for the exporter's retries (``OTEL_EXPORTER_OTLP_TIMEOUT``, 10 s); its spans are lost."""
    global _enabled
    if _provider is not None and _enabled:
        _enabled = False
        flushing = threading.Thread(target=_provider.shutdown, name="otel-shutdown", daemon=True)
        flushing.start()
        flushing.join(wait_s)


def force_flush(timeout_ms: int = 5000) -> None:
    if _provider is not None:
        _provider.force_flush(timeout_ms)


# -- propagation --------------------------------------------------------------------------------------------

def extract(carrier: Mapping[str, Any] | None, prefix: str = "") -> otel_context.Context | None:
    """The remote parent a carrier (context data, message headers with ``prefix``) names, if any."""
    if not carrier:
        return None
    parent = carrier.get(prefix + TRACEPARENT)
    if not isinstance(parent, str):
        return None
    values = {TRACEPARENT: parent}
    state = carrier.get(prefix + TRACESTATE)
    if isinstance(state, str):
        values[TRACESTATE] = state
    ctx = _propagator.extract(values)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def inject(carrier: MutableMapping[str, Any], prefix: str = "", span: Span | None = None) -> None:
    """Write ``span``'s (else the current span's) ``traceparent`` into ``carrier`` (replacing one it held);
    nothing when tracing is off or no span is valid."""
    if not _enabled:
        return
    ctx = trace.set_span_in_context(span) if span is not None else None
    values: dict[str, str] = {}
    _propagator.inject(values, context=ctx)
    if TRACEPARENT in values:
        carrier[prefix + TRACEPARENT] = values[TRACEPARENT]
        if TRACESTATE in values:
            carrier[prefix + TRACESTATE] = values[TRACESTATE]
        else:
            carrier.pop(prefix + TRACESTATE, None)


def context_headers() -> dict[str, str]:
    """The current span as context data (``{"traceparent": ...}``), for what the worker hands on; ``{}`` off."""
    if not _enabled:
        return {}
    values: dict[str, str] = {}
    inject(values)
    return values


def outbox_headers(headers: dict[str, str]) -> dict[str, str]:
    """An outbox row's headers with the current span's ``nameko.traceparent`` (the relay continues from it)."""
    if _enabled:
        inject(headers, HEADER_PREFIX)
    return headers


# -- spans --------------------------------------------------------------------------------------------------

def record_error(span: Span, exc: BaseException | None) -> None:
    """``exc`` on ``span``: its class name (never its message); the span's status an error unless ``exc``
    is an answer to a client's mistake (a ServiceError or Problem below 500)."""
    if exc is None or not span.is_recording():
        return
    name = type(exc).__name__
    span.set_attribute("error.type", name)
    status = getattr(exc, "status", None)
    if not (isinstance(status, int) and status < 500):
        span.set_status(Status(StatusCode.ERROR, name))


@contextlib.contextmanager
def _started(name: str, kind: SpanKind, parent: otel_context.Context | None,
             attributes: Mapping[str, Any] | None) -> Iterator[Span]:
    with _tracer.start_as_current_span(name, context=parent, kind=kind, attributes=_clean(attributes),
                                       record_exception=False, set_status_on_exception=False) as span:
        try:
            yield span
        except BaseException as exc:
            record_error(span, exc)
            raise


def span(name: str, kind: SpanKind = INTERNAL, attributes: Mapping[str, Any] | None = None):
    """A child of the current span, made current for the block (``None`` inside when off or outside any trace:
    work nobody traced opens no trace of its own)."""
    if not _enabled or not trace.get_current_span().get_span_context().is_valid:
        return _NULL
    return _started(name, kind, None, attributes)


def entry_span(name: str, kind: SpanKind, carrier: Mapping[str, Any] | None = None, prefix: str = "",
               attributes: Mapping[str, Any] | None = None):
    """A span where work enters the process (a server or consumer span), the child of the parent ``carrier``
    names or a new trace's root, made current for the block; a null context when off."""
    if not _enabled:
        return _NULL
    return _started(name, kind, extract(carrier, prefix) or otel_context.Context(), attributes)


@contextlib.contextmanager
def _attached(ctx: otel_context.Context) -> Iterator[None]:
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


def continued(carrier: Mapping[str, Any] | None, prefix: str = ""):
    """The parent ``carrier`` names made current for the block, without a span of its own (a worker that
    continues its caller's span in another green thread); a null context when off or when it names none."""
    if not _enabled:
        return _NULL
    ctx = extract(carrier, prefix)
    return _NULL if ctx is None else _attached(ctx)


def current_span() -> Span | None:
    """The current recording span, if any (always ``None`` off)."""
    if not _enabled:
        return None
    current = trace.get_current_span()
    return current if current.is_recording() else None


def start_span(name: str, kind: SpanKind, parent: otel_context.Context | None = None,
               attributes: Mapping[str, Any] | None = None) -> Span:
    """A span not made current (ended by the caller), the child of ``parent`` or of the current span."""
    return _tracer.start_span(name, context=parent, kind=kind, attributes=_clean(attributes))


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not attributes:
        return None
    return {k: v for k, v in attributes.items() if v is not None}


# -- RPC client ---------------------------------------------------------------------------------------------

class ClientCall:
    """An RPC client span started when the request is sent, ended with its reply (or its loss): it spans
    green threads and a send that returns before the reply, so it is not made current."""

    __slots__ = ("span",)

    def __init__(self, span: Span) -> None:
        self.span = span

    def end(self, exc: BaseException | None = None, *, error_type: str | None = None) -> None:
        """Ended (once): ``exc`` as :func:`record_error` records it, or an error named ``error_type``
        (``timeout``: the caller gave up)."""
        span, self.span = self.span, None
        if span is None:
            return
        record_error(span, exc)
        if error_type is not None and span.is_recording():
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR, error_type))
        span.end()


def rpc_client_call(service: str, method: str, headers: MutableMapping[str, Any],
                    prefix: str = HEADER_PREFIX) -> ClientCall | None:
    """A client span for a call of ``service.method`` about to be sent with ``headers`` (its ``traceparent``
    written into them), the child of the current span, else of the ``traceparent`` the headers carry already
    (the worker's context data, in a green thread the worker spawned); ``None`` when off or when neither
    names a trace (a call nobody traced, a readiness check: no trace of its own)."""
    if not _enabled:
        return None
    parent = None
    if not trace.get_current_span().get_span_context().is_valid:
        parent = extract(headers, prefix)
        if parent is None:
            return None
    client = start_span(f"{service}/{method}", CLIENT, parent, attributes=rpc_attributes(service, method))
    inject(headers, prefix, client)
    return ClientCall(client)


def rpc_client_span(service: str, method: str, context_data: Mapping[str, Any] | None = None):
    """A client span for a call of ``service.method`` made and awaited in this block, made current (what the
    call's headers then carry): the child of the current span, else of the ``traceparent`` in the worker's
    ``context_data`` (a green thread the worker spawned); a null context when off or outside any trace."""
    if not _enabled:
        return _NULL
    parent = None
    if not trace.get_current_span().get_span_context().is_valid:
        parent = extract(context_data)
        if parent is None:
            return _NULL
    return _started(f"{service}/{method}", CLIENT, parent, rpc_attributes(service, method))


def rpc_attributes(service: str, method: str) -> dict[str, str]:
    return {"rpc.system": "nameko", "rpc.service": service, "rpc.method": method}


# -- the relay ----------------------------------------------------------------------------------------------

class PublishSpans:
    """The producer spans of one relay batch: one per outbox row that carries a ``traceparent`` (the row's
    writer was traced), the child of it; the row's message goes out with the producer span's instead."""

    def __init__(self) -> None:
        self._spans: dict[int, Span] = {}

    def headers(self, row_id: int, exchange: str, routing_key: str, message_id: str,
                headers: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The message headers of a row about to be published (``None``: as stored)."""
        parent = extract(headers, HEADER_PREFIX)
        if parent is None:
            return None
        producer = start_span(f"publish {exchange}", PRODUCER, parent, {
            "messaging.system": "rabbitmq", "messaging.operation.name": "publish",
            "messaging.operation.type": "send", "messaging.destination.name": exchange,
            "messaging.rabbitmq.destination.routing_key": routing_key, "messaging.message.id": message_id,
        })
        self._spans[row_id] = producer
        out = dict(headers or {})
        inject(out, HEADER_PREFIX, producer)
        return out

    def end(self, confirmed: Sequence[int] | set[int], exc: BaseException | None = None) -> None:
        """The batch's outcome: a row not confirmed by the broker ends its span as an error."""
        done = set(confirmed)
        for row_id, producer in self._spans.items():
            if row_id not in done:
                producer.set_status(Status(StatusCode.ERROR, type(exc).__name__ if exc else "unconfirmed"))
                if exc is not None:
                    producer.set_attribute("error.type", type(exc).__name__)
            producer.end()
        self._spans.clear()


def publish_spans() -> PublishSpans | None:
    """A relay batch's producer spans; ``None`` when off."""
    return PublishSpans() if _enabled else None


# -- batch consumers ----------------------------------------------------------------------------------------

@contextlib.contextmanager
def _consuming(messages: Sequence[Any], queue: str) -> Iterator[None]:
    spans = []
    for message in messages:
        properties = getattr(message, "properties", {}) or {}
        headers = properties.get("application_headers") or {}
        parent = extract(headers, HEADER_PREFIX) or otel_context.Context()
        spans.append(start_span(f"process {queue}", CONSUMER, parent, {
            "messaging.system": "rabbitmq", "messaging.operation.name": "process",
            "messaging.operation.type": "process", "messaging.destination.subscription.name": queue,
            "messaging.message.id": properties.get("message_id"),
            "messaging.batch.message_count": len(messages),
        }))
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        for consumer in spans:
            record_error(consumer, error)
            consumer.end()


def consuming(messages: Sequence[Any], queue: str):
    """A consumer span per message of a batch (AMQP messages, their ``nameko.traceparent`` header the parent)
    for the time the batch is handled; a null context when off."""
    if not _enabled or not messages:
        return _NULL
    return _consuming(messages, queue)


# -- logs ---------------------------------------------------------------------------------------------------

def add_trace_ids(logger: Any, method_name: str, event_dict: dict) -> dict:
    """structlog processor: ``trace_id`` and ``span_id`` (hex) of the span current when the line is logged."""
    if _enabled:
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            event_dict.setdefault("trace_id", format(ctx.trace_id, "032x"))
            event_dict.setdefault("span_id", format(ctx.span_id, "016x"))
    return event_dict


__all__ = [
    "CLIENT", "CONSUMER", "INTERNAL", "PRODUCER", "SERVER", "TRACEPARENT", "ClientCall", "PublishSpans",
    "add_trace_ids", "configure_tracing", "consuming", "context_headers", "continued", "current_span", "enabled",
    "entry_span", "extract", "force_flush", "inject", "outbox_headers", "publish_spans", "record_error",
    "rpc_client_call", "shutdown_tracing", "span", "start_span", "tracing_endpoint",
]
