"""The gateway's HTTP server span (issue 18), made by :class:`~.server.GatewayApp` for every request but a
WebSocket's (a socket open for hours is no request) and the probes' ``/healthz`` and ``/readyz``, when tracing
is on (:mod:`upgestao_kernel.tracing`).

It is the child of a ``traceparent`` sent by a trusted proxy (``GATEWAY_TRUSTED_PROXIES``: the ingress, which
may trace too; W3C Trace Context, its ``tracestate`` ignored), else a new trace's root: a client reaching the
gateway directly does not choose its trace id, nor force its request to be sampled (a ``traceparent`` with the
sampled flag on every request would make the collector keep everything a sampler was set to drop).
Its name is ``<method> <route template>`` (``POST /v1/customers``,
``GET /v1/users/{user_id}``: never the path asked for, never a query string), ``<method> /app/*`` for the
privacy centre's pages and files, ``<method>`` alone for a path no route has; its attributes the method, the
route template, the status, the problem type's slug and the request id. The request's worker continues it
(its ``traceparent`` travels in the worker's context data, see
:meth:`~.server.GatewayWebServer.context_data_from_headers`), so each RPC the route makes is its child.
"""

from __future__ import annotations

from typing import Any

from upgestao_kernel import tracing

PROBES = frozenset({"/healthz", "/readyz"})
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_span(environ: dict[str, Any], request_id: str, *, continue_client: bool = False):
    """The span of one request, current for the block (a null context when tracing is off, and for the probes'
    ``/healthz`` and ``/readyz``: a trace every few seconds per kubelet would bury the requests').
    ``continue_client``: the request's ``traceparent`` is its parent (the peer is a trusted proxy)."""
    if not tracing.enabled() or environ.get("PATH_INFO") in PROBES:
        return tracing.continued(None)
    method = _method(environ.get("REQUEST_METHOD"))
    # the client's traceparent only: its tracestate (free text, up to 32 members) would travel with every
    # call and outbox row of the request and be exported, and the platform has no use for it
    parent = environ.get("HTTP_TRACEPARENT") if continue_client else None
    carrier = {tracing.TRACEPARENT: parent} if parent else None
    return tracing.entry_span(method, tracing.SERVER, carrier, attributes={
        "http.request.method": method, "upgestao.request_id": request_id,
    })


def answered(route: str | None, method: str, status: int, problem: str | None) -> None:
    """Name the current request span after its route and record the answer (nothing when off)."""
    span = tracing.current_span()
    if span is None:
        return
    method = _method(method)
    span.update_name(f"{method} {route}" if route else method)
    if route:
        span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if problem:
        span.set_attribute("upgestao.problem", problem)
    if status >= 500:
        span.set_attribute("error.type", str(status))
        span.set_status(tracing.Status(tracing.StatusCode.ERROR, str(status)))


def _method(method: Any) -> str:
    return method if method in _METHODS else "_OTHER"
