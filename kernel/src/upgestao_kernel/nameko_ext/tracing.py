"""Traces in nameko (issue 18): a span for every worker and every RPC call, installed only when tracing is on.

:func:`install` (called by ``run`` once :func:`upgestao_kernel.tracing.configure_tracing` turned tracing on;
off, nothing here is patched and nameko runs untouched) wraps

* every worker of every service (``ServiceContainer._run_worker``): an RPC entrypoint runs in a server span
  ``<service>/<method>``, a consumer (``reliable_handler``, nameko's ``event_handler``) in a consumer span
  ``process <queue>``, each the child of the ``traceparent`` its message carried in nameko's context data
  (or a new trace's root; but ``health``/``ping`` asked by nobody traced, which would be a trace every
  readiness poll); any other entrypoint (the gateway's HTTP routes, timers) continues the span its context
  data names, if any, without a span of its own (the gateway's HTTP server span is made by its WSGI app,
  in the connection's green thread). The outcome marks the span: an unexpected error, or a 5xx answer, as
  an error, with the exception's class name only;
* every call through nameko's RPC proxies (``RpcProxy``, the standalone ``ClusterRpcProxy``) made inside a
  trace: a client span ``<service>/<method>`` around the request and its reply, whose ``traceparent`` goes out
  in the request's ``nameko.traceparent`` header (replacing the one the worker received).
"""

from __future__ import annotations

import re
from typing import Any

from nameko.containers import ServiceContainer
from nameko.messaging import Consumer
from nameko.rpc import MethodProxy
from nameko.rpc import Rpc as NamekoRpc

from .. import tracing

_PATCHED = "_upgestao_traced"
_UNTRACED_ROOTS = frozenset({"health", "ping"})  # asked by readiness polls: a span only inside a trace
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")


def install() -> None:
    """Idempotent: trace every worker and every RPC proxy call of this process."""
    if getattr(ServiceContainer._run_worker, _PATCHED, False):
        return
    run_worker = ServiceContainer._run_worker
    call = MethodProxy.__call__
    message_headers = MethodProxy.get_message_headers

    def _run_worker(self, worker_ctx, handle_result):
        scope = worker_scope(self.service_name, worker_ctx)
        with scope as span:
            if span is None or handle_result is None:
                return run_worker(self, worker_ctx, handle_result)

            def handled(worker_ctx, result, exc_info):
                result, exc_info = handle_result(worker_ctx, result, exc_info)
                if exc_info is not None:
                    tracing.record_error(span, exc_info[1])
                return result, exc_info

            return run_worker(self, worker_ctx, handled)

    def __call__(self, *args, **kwargs):
        with tracing.rpc_client_span(self.service_name, self.method_name, getattr(self.worker_ctx, "data", None)):
            return call(self, *args, **kwargs)

    def get_message_headers(self, worker_ctx):
        headers = message_headers(self, worker_ctx)
        tracing.inject(headers, tracing.HEADER_PREFIX)  # the client span's, not the one the worker received
        return headers

    for fn in (_run_worker, __call__, get_message_headers):
        setattr(fn, _PATCHED, True)
    ServiceContainer._run_worker = _run_worker
    MethodProxy.__call__ = __call__
    MethodProxy.get_message_headers = get_message_headers


def worker_scope(service: str, worker_ctx: Any):
    """The span (or the continued context) a worker runs in."""
    entrypoint = worker_ctx.entrypoint
    data = worker_ctx.data
    if isinstance(entrypoint, NamekoRpc):
        method = entrypoint.method_name
        if method in _UNTRACED_ROOTS and tracing.extract(data) is None:
            return tracing.continued(None)
        attributes: dict[str, Any] = tracing.rpc_attributes(service, method)
        attributes["upgestao.request_id"] = _safe_id(data.get("request_id"))
        return tracing.entry_span(f"{service}/{method}", tracing.SERVER, data, attributes=attributes)
    if isinstance(entrypoint, Consumer):
        queue = getattr(entrypoint, "queue_name", None) or getattr(getattr(entrypoint, "queue", None), "name", None)
        queue = queue or f"{service}.{entrypoint.method_name}"
        event = worker_ctx.args[0] if worker_ctx.args else None
        return tracing.entry_span(f"process {queue}", tracing.CONSUMER, data, attributes={
            "messaging.system": "rabbitmq", "messaging.operation.name": "process",
            "messaging.operation.type": "process", "messaging.destination.subscription.name": queue,
            "messaging.message.id": _safe_id(getattr(event, "event_id", None)),
            "messaging.rabbitmq.destination.routing_key": _safe_id(getattr(event, "type", None)),
            "upgestao.request_id": _safe_id(data.get("request_id")),
        })
    return tracing.continued(data)


def _safe_id(value: Any) -> str | None:
    """An id as an attribute value: at most 64 of ``[A-Za-z0-9._:-]``, else none."""
    return value if isinstance(value, str) and _SAFE_ID.match(value) else None
