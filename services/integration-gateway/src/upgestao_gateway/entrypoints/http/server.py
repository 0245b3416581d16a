"""The gateway's HTTP server: nameko's web server with the gateway's WSGI app and protocol.

* :class:`GatewayApp` (the WSGI application) gives each request its id and its client's address
  (through the trusted proxies only: :mod:`upgestao_gateway.domain.client_address`), routes it (404
  and 405 as problem documents, never werkzeug's HTML), serves the web app's pages and files under
  ``/app/`` (:mod:`upgestao_gateway.entrypoints.web`: no route, no OpenAPI operation) and puts its
  security headers on every ``/app`` answer, refuses a path id that is not a UUID (422,
  before anything else looks at the request) and a body over the route's limit from its
  ``Content-Length`` before reading anything, and writes one ``http.request`` log line per request
  (never an address).
* :class:`GatewayProtocol` (eventlet's HTTP protocol) answers what eventlet refuses itself -- a request
  line or headers over the limits, an unsupported HTTP version (400, 414, 431, 505) -- and what it
  would let through although two parsers could read it differently (a header line without a colon, a
  malformed or conflicting ``Content-Length``, a transfer coding other than ``chunked``: 400) with
  problem+json instead of an empty HTTP/1.0 answer or a guess, and closes a connection
  whose body it refused after a short bounded lingering read, so the client still gets the answer; its
  connections send without Nagle's delay (an answer over 16 KiB waited 40 ms for an acknowledgement).
* :class:`GatewayWebServer` builds the URL map from the route entrypoints (a duplicate route fails at
  start) and the context data that travels with every RPC.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from http import HTTPStatus
from logging import getLogger

import eventlet
from eventlet import wsgi
from nameko.exceptions import ConfigurationError
from nameko.web.server import HttpOnlyProtocol, WebServer
from upgestao_kernel.logging import get_logger
from upgestao_kernel.tracing import context_headers
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map

from ...domain.client_address import client_address, is_trusted, parse_address
from ...settings import EdgeSettings, load_edge_settings
from ..web.headers import is_app_path, security_headers
from ..web.pages import StaticFiles, is_session_path
from .metrics import UNMATCHED, WEB_APP, observe_request
from .problems import (
    PROBLEM_CONTENT_TYPE,
    Problem,
    header_fields_too_large,
    http_version_not_supported,
    internal_error,
    malformed_request,
    method_not_allowed,
    not_found,
    payload_too_large,
    uri_too_long,
)
from .request import (
    ENV_CLOSE,
    IDEMPOTENCY_KEY_HEADER,
    REQUEST_ID_HEADER,
    GatewayRequest,
    PathSegment,
    accept_request_id,
    check_path_ids,
    close_connection_after_response,
)
from .responses import dumps, problem_response
from .spec import MAX_BODY_BYTES
from .tracing import answered, request_span

log = get_logger(__name__)

_MAX_INSTANCE = 2048  # a longer request path is not echoed as a problem's instance


class GatewayApp:
    """The WSGI application: request id, routing errors, size limit, access log."""

    def __init__(self, server: GatewayWebServer) -> None:
        self.server = server
        self.url_map = server.make_url_map()

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        request = GatewayRequest(environ, shallow=True)
        request.request_id = accept_request_id(environ.get("HTTP_X_REQUEST_ID"))
        self.identify_client(request, environ)
        upgrade = self.server.upgrades.get(request.path)
        if upgrade is not None:  # a WebSocket (GET /v1/stream: upgestao_gateway.push), before any routing
            return upgrade(request, start_response)
        # its server span (tracing on: .tracing); a client's traceparent is continued only from the ingress
        with request_span(environ, request.request_id, continue_client=request.from_trusted_proxy):
            return self.answer(request, environ, start_response, started)

    def answer(self, request: GatewayRequest, environ, start_response, started: float):
        """Route, run and answer one request (not a WebSocket's)."""
        provider = None
        web = is_app_path(request.path)
        try:
            if web and not is_session_path(request.path):  # the web app's files and pages: no route
                response = self.server.static_files.respond(request)
            else:
                try:
                    provider, values = self.url_map.bind_to_environ(environ).match()
                except MethodNotAllowed as exc:
                    raise method_not_allowed(exc.valid_methods or ()) from None
                except HTTPException:
                    raise not_found() from None
                request.path_values = check_path_ids(provider.spec, values)
                limit = provider.spec.max_body_bytes
                if (request.content_length or 0) > limit:
                    close_connection_after_response(environ)
                    raise payload_too_large(limit)
                response = provider.handle_request(request)
        except Problem as problem:
            response = problem_response(problem, request)
        except Exception as exc:
            log.error("http.unhandled_exception", error_type=type(exc).__name__, request_id=request.request_id,
                      exc_info=True)
            response = problem_response(internal_error(), request)
        response.headers[REQUEST_ID_HEADER] = request.request_id
        if request.idempotency_key is not None:  # a retry with it is answered as this request was
            response.headers[IDEMPOTENCY_KEY_HEADER] = request.idempotency_key
        if request.rate_limit is not None:  # a signed-in caller's quota, on every answer (429 too)
            for name, value in request.rate_limit.headers().items():
                response.headers[name] = value
        if web:  # the browser's pages, files and session: strict headers; nothing cached unless said
            for name, value in security_headers(self.server.production).items():
                response.headers[name] = value
            if "Cache-Control" not in response.headers:
                response.headers["Cache-Control"] = "no-store"
        elapsed = time.perf_counter() - started
        observe_request(provider.spec.path if provider is not None else WEB_APP if web else UNMATCHED,
                        request.method, response.status_code, getattr(response, "problem_slug", None), elapsed)
        answered(provider.spec.template if provider is not None else WEB_APP if web else None,
                 request.method, response.status_code, getattr(response, "problem_slug", None))
        log.info(
            "http.request",
            method=request.method,
            path=(provider.spec.template if provider is not None
                  else _web_log_path(request.path) if web else None),
            status=response.status_code,
            duration_ms=round(elapsed * 1000, 3),
            request_id=request.request_id,
        )
        return response(environ, start_response)

    def identify_client(self, request: GatewayRequest, environ) -> None:
        """The client's address (what travels as ``source_ip``: identity's per-address login budget
        keys on it) and whether this is an operator's direct request."""
        edge = self.server.edge
        peer = environ.get("REMOTE_ADDR")
        request.client_address = client_address(peer, environ.get("HTTP_X_FORWARDED_FOR"), edge.trusted_proxies)
        address = parse_address(peer) if peer else None
        request.operator = (address is not None and is_trusted(address, edge.ops_networks)
                            and not is_trusted(address, edge.trusted_proxies))
        request.from_trusted_proxy = address is not None and is_trusted(address, edge.trusted_proxies)


def _web_log_path(path: str) -> str:
    """What the access log says of a web app path (never a page's ids)."""
    return "/app/static/*" if path.startswith("/app/static/") else "/app/*"


class GatewayProtocol(HttpOnlyProtocol):
    """eventlet's HTTP protocol, able to close a connection whose body it refused.

    A refused body is not discarded by reading it all (eventlet's default for
    kept-alive connections): the connection is closed after the response, with
    a short, bounded lingering read so the client still receives the answer
    instead of a connection reset.
    """

    linger_bytes = 8 * MAX_BODY_BYTES
    linger_seconds = 2.0
    _linger = False
    command: str | None = None

    def setup(self) -> None:
        """eventlet's, with Nagle's algorithm off: eventlet writes an answer over its 16 KiB buffer in two parts
        (the buffered head, then the body), and the body waited for the client's delayed acknowledgement of
        the head (40 ms on Linux: a page of 50 messages took 50 ms at one request at a time); a WebSocket's
        frames, small and back to back, are sent at once as well."""
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # not a TCP socket
            pass

    def get_environ(self):
        environ = super().get_environ()
        environ[ENV_CLOSE] = self._close_after_response
        return environ

    # -- requests refused before they reach the application

    def handle_one_request(self) -> None:
        """eventlet's ``handle_one_request``, answering what it refuses itself (a request line or header
        over the limits) and what it would guess at (:meth:`_framing_refusal`) with problem+json instead
        of an empty HTTP/1.0 answer; everything else is eventlet's own path."""
        if self.server.max_http_version:
            self.protocol_version = self.server.max_http_version
        self.command, self.path, self.headers = None, "", None  # nothing of the previous request
        self.raw_requestline = self._read_request_line()
        self.conn_state[2] = wsgi.STATE_REQUEST
        if not self.raw_requestline:
            self.close_connection = 1
            return
        if len(self.raw_requestline) >= self.server.url_length_limit:
            self._refuse(uri_too_long(self.server.url_length_limit))
            return
        original_rfile = self.rfile
        try:
            self.rfile = wsgi.FileObjectForHeaders(self.rfile)
            if not self.parse_request():  # it answered through send_error
                return
        except (wsgi.HeaderLineTooLong, wsgi.HeadersTooLarge):
            self.headers = None  # (partly read)
            self._refuse(header_fields_too_large(wsgi.MAX_HEADER_LINE, wsgi.MAX_TOTAL_HEADER_SIZE))
            return
        finally:
            self.rfile = original_rfile

        refusal = self._framing_refusal()
        if refusal is not None:
            self._refuse(malformed_request(refusal))
            return

        self.environ = self.get_environ()
        self.application = self.server.app
        try:
            self.server.outstanding_requests += 1
            try:
                self.handle_one_response()
            except OSError as exc:
                if getattr(exc, "errno", None) not in wsgi.BROKEN_SOCK:
                    raise
        finally:
            self.server.outstanding_requests -= 1

    def _framing_refusal(self) -> str | None:
        """Why the request's headers cannot say unambiguously where its body ends (None: they can).

        Each case is one where two HTTP parsers in a row -- the ingress and this one -- could disagree on
        where the next request starts (request smuggling), so it is refused and the connection closed:
        a header line without a colon (the standard library drops it and *every header after it*), a
        malformed or repeated-and-different ``Content-Length``, ``Content-Length`` with
        ``Transfer-Encoding``, and a transfer coding other than ``chunked`` (its body's end is unknown)."""
        if self.headers.defects:
            return "A header line is not a 'name: value' field."
        lengths = {value.strip() for value in self.headers.get_all("content-length") or ()}
        if len(lengths) > 1:
            return "Content-Length must be given once."
        if lengths and not all(value.isascii() and value.isdigit() for value in lengths):
            return "Content-Length must be a number of bytes."
        encodings = self.headers.get_all("transfer-encoding")
        if encodings is not None:
            if lengths:
                return "Content-Length and Transfer-Encoding must not be sent together."
            codings = [coding.strip().lower() for coding in ",".join(encodings).split(",")]
            if codings != ["chunked"]:
                return "Transfer-Encoding must be chunked (and nothing else)."
        return None

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's request-line and header errors (``parse_request``), as problem+json.
        Its messages quote the client's input: they are not repeated."""
        status = int(code)
        if status == 505:
            problem = http_version_not_supported()
        elif status == 431:
            problem = header_fields_too_large(wsgi.MAX_HEADER_LINE, wsgi.MAX_TOTAL_HEADER_SIZE)
        elif status == 414:
            problem = uri_too_long(self.server.url_length_limit)
        else:
            problem = malformed_request("The request line or a header is not valid HTTP/1.1.")
        self._refuse(problem)

    def _refuse(self, problem: Problem) -> None:
        """Answer ``problem`` and close the connection (what is left of the request is not read)."""
        headers = getattr(self, "headers", None)
        request_id = accept_request_id(headers.get(REQUEST_ID_HEADER) if headers is not None else None)
        path = self.path if self.command else ""
        instance = path.split("?", 1)[0] if len(path) <= _MAX_INSTANCE else ""
        body = dumps(problem.to_dict(instance=instance, request_id=request_id)).encode("utf-8")
        reason = HTTPStatus(problem.status).phrase if problem.status in HTTPStatus._value2member_map_ else "Error"
        head = [
            f"HTTP/1.1 {problem.status} {reason}",
            f"Content-Type: {PROBLEM_CONTENT_TYPE}",
            f"Content-Length: {len(body)}",
            f"{REQUEST_ID_HEADER}: {request_id}",
            "Connection: close",
            *(f"{name}: {value}" for name, value in problem.headers.items()),
        ]
        try:
            self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
            self.wfile.flush()
        except OSError:
            pass
        self._close_after_response()
        log.info("http.refused", status=problem.status, type=problem.type.rsplit("/", 1)[-1], request_id=request_id)

    def _close_after_response(self) -> None:
        self.close_connection = 1
        self._linger = True

    def finish(self):
        if self._linger:
            self._linger = False
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
                received = 0
                with eventlet.Timeout(self.linger_seconds, False):
                    while received < self.linger_bytes:
                        chunk = self.connection.recv(65536)
                        if not chunk:
                            break
                        received += len(chunk)
            except OSError:
                pass
        super().finish()


class GatewayWebServer(WebServer):
    """nameko's web server with the gateway's WSGI app, protocol and context data."""

    keepalive_s = 75
    socket_timeout_s = 30
    edge: EdgeSettings = EdgeSettings()
    production = False  # UPGESTAO_ENV=production: the web app's answers carry HSTS

    def __init__(self) -> None:
        super().__init__()
        # path -> WSGI-like callable (request, start_response) served before routing (upgestao_gateway.push)
        self.upgrades: dict[str, Callable] = {}
        self.static_files = StaticFiles()  # the web app under /app/ (entrypoints.web.pages)

    def setup(self) -> None:
        self.edge = load_edge_settings()
        self.production = os.environ.get("UPGESTAO_ENV", "local") == "production"
        super().setup()

    def get_wsgi_app(self) -> GatewayApp:
        return GatewayApp(self)

    def get_wsgi_server(self, sock, wsgi_app, protocol=GatewayProtocol, debug=False):
        return wsgi.Server(
            sock,
            sock.getsockname(),
            wsgi_app,
            protocol=GatewayProtocol,
            debug=False,  # never a traceback in a response
            log=getLogger(__name__),
            log_output=False,  # eventlet's access log shows query strings; ours does not
            keepalive=self.keepalive_s,
            socket_timeout=self.socket_timeout_s,
            capitalize_response_headers=False,
        )

    def make_url_map(self) -> Map:
        url_map = Map(strict_slashes=True, merge_slashes=False, redirect_defaults=False,
                      converters={"uuid": PathSegment})
        seen: dict[tuple[str, str], str] = {}
        for provider in self._providers:
            key = (provider.spec.method, provider.spec.template)
            if key in seen:
                raise ConfigurationError(
                    f"{key[0]} {key[1]} is declared by both {seen[key]} and {provider.method_name}"
                )
            seen[key] = provider.method_name
            rule = provider.get_url_rule()
            rule.endpoint = provider
            url_map.add(rule)
        return url_map

    def context_data_from_headers(self, request: GatewayRequest) -> dict[str, str]:
        """What travels with every RPC the request's worker makes."""
        data = {"request_id": request.request_id}
        if request.client_address:
            # the full address, for throttling only (audit records keep its network: upgestao_kernel.audit)
            data["source_ip"] = request.client_address
        if request.principal is not None:
            # the proof of who asks: each service verifies it (identity's signature) and takes the actor
            # from it; actor_id/actor_role are carried for logs only and trusted by nobody
            if request.principal.token:
                data["access_token"] = request.principal.token
            data["actor_id"] = request.principal.actor_id
            data["actor_role"] = request.principal.role
        data.update(context_headers())  # the request's span (tracing on): the worker continues it
        return data
