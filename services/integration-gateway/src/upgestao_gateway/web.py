"""The HTTP layer: web server, routing, request guards, responses.

Every route is declared once with :func:`route`; that one declaration drives
the URL map, the request guards (auth, permission, body size, content type,
JSON, validation) and the OpenAPI document (:mod:`upgestao_gateway.openapi`)::

    @route("POST", "/v1/things", body=NewThingSchema, response=ThingSchema, status=201,
           auth="required", permission="things.create", personal_data=False, errors=(409, 503),
           summary="Create a thing")
    def create_thing(self, request, body):
        return self.rpc.things.create(**body)

Every route says whether it reads or changes a person's data
(``personal_data=True|False``, required; the OpenAPI operation shows it as
``x-personal-data``): such a route must leave an audit record of each
successful call, which the end-to-end tests check route by route.

Access is denied by default: an ``auth="required"`` route must name the
permission it needs. Authentication (401) happens before the worker; the
permission check (403) in the worker, so the refusal is audited through the
gateway's own database (:mod:`upgestao_gateway.access.denials`).

A handler receives the :class:`GatewayRequest` (``request.request_id``,
``request.principal``), the path variables by name, ``body=`` (the loaded
``body`` schema, or ``bytes`` for a :class:`~upgestao_gateway.bodies.RawBody`)
and ``query=`` (the loaded ``query`` schema) when declared.
It returns the payload (dumped through ``response`` and answered with
``status``), a :class:`Reply` for another status or extra headers, a
:class:`Stream` (a route declared with a
:class:`~upgestao_gateway.bodies.StreamResponse`), or raises a
:class:`~upgestao_gateway.problems.Problem`. Anything else it raises is
logged with its traceback and answered as a generic 500 problem.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import json
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from logging import getLogger
from typing import Any

import eventlet
from eventlet import wsgi
from eventlet.event import Event
from eventlet.queue import Empty, Full, LightQueue
from marshmallow import Schema, ValidationError
from marshmallow import fields as ma_fields
from nameko.exceptions import ConfigurationError, ContainerBeingKilled
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import HttpOnlyProtocol, WebServer
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.logging import get_logger
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import BaseConverter, Map, Rule
from werkzeug.wrappers import Request, Response

from .access.control import AccessControl
from .access.denials import deny
from .auth import Authenticator, AuthenticatorFactory, NoAuthenticator, Principal
from .bodies import BinaryResponse, RawBody, StreamResponse
from .problems import (
    PROBLEM_CONTENT_TYPE,
    Problem,
    duplicate_key,
    header_fields_too_large,
    http_version_not_supported,
    internal_error,
    malformed_request,
    method_not_allowed,
    not_found,
    payload_too_large,
    problem_from_service_error,
    service_unavailable,
    unauthenticated,
    unsupported_media_type,
    uri_too_long,
    validation_failed,
)
from .rpc import RpcUnavailable

log = get_logger(__name__)

MAX_BODY_BYTES = 1 << 20  # 1 MiB
JSON_CONTENT_TYPE = "application/json"
REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._-]{8,128}$"
# A write's idempotency key (the IETF draft's header; a structured-field string, quoted or not):
# the same key again is answered as the first time, never carried out twice (keyed requests).
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9._:-]{8,128}$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# An id that is not a UUID (a data subject's, an actor's, a service's): what the `id` path converter takes.
ID_CHARACTERS = r"[A-Za-z0-9._:-]{1,128}"
ID_PATTERN = f"^{ID_CHARACTERS}$"
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)
_ENV_CLOSE = "upgestao.close_connection"
_MAX_INSTANCE = 2048  # a longer request path is not echoed as a problem's instance
AUTH_MODES = ("none", "required")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
PERMISSION = re.compile(r"^[a-z][a-z0-9_-]*\.[a-z][a-z0-9_-]*$")
_PATH_VARIABLE = re.compile(r"<(?:(?P<converter>[A-Za-z_]\w*)(?:\([^)]*\))?:)?(?P<name>[A-Za-z_]\w*)>")


def accept_idempotency_key(value: str | None) -> str:
    """The client's Idempotency-Key, or a new one; a malformed one is refused (a key that is silently
    replaced would not protect the retry its client counts on)."""
    if value is None:
        return str(uuid.uuid4())
    unquoted = value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if not _IDEMPOTENCY_KEY.fullmatch(unquoted):
        raise Problem("malformed-request",
                      f"The {IDEMPOTENCY_KEY_HEADER} header must match {IDEMPOTENCY_KEY_PATTERN}.",
                      errors=[{"field": IDEMPOTENCY_KEY_HEADER, "message": "is malformed"}])
    return unquoted


def accept_request_id(value: str | None) -> str:
    """The client's request id when well-formed, else a new one."""
    if value and _REQUEST_ID.fullmatch(value):
        return value
    return str(uuid.uuid4())


class IdConverter(BaseConverter):
    """``<id:name>``: letters, digits and ``. _ : -``, at most 128 (anything else: 404, as for a UUID)."""

    regex = ID_CHARACTERS
    part_isolating = True


class GatewayRequest(Request):
    request_id: str = ""
    idempotency_key: str | None = None  # a keyed route's (the client's, or generated and answered)
    idempotency_base: str | None = None  # the key scoped to the caller: what the RPC keys start with
    principal: Principal | None = None
    route: RouteSpec | None = None
    path_values: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """A payload answered with another status than the route's, or extra headers."""

    payload: Any = None
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stream:
    """The answer of a route declared with ``response=StreamResponse(...)``.

    ``chunks`` (bytes or str; a generator, typically) is iterated in the
    route's worker *after* the status and headers are sent, so the worker's
    dependencies (``self.rpc``) still serve it. An exception while iterating
    is logged and ends the transfer abruptly (no final chunk): the client sees
    a truncated body, never a well-formed one that merely stops early.
    """

    chunks: Iterable[bytes | str]
    headers: Mapping[str, str] = field(default_factory=dict)


# -- server ----------------------------------------------------------------------


class GatewayApp:
    """The WSGI application: request id, routing errors, size limit, access log."""

    def __init__(self, server: GatewayWebServer) -> None:
        self.server = server
        self.url_map = server.make_url_map()

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        request = GatewayRequest(environ, shallow=True)
        request.request_id = accept_request_id(environ.get("HTTP_X_REQUEST_ID"))
        provider = None
        try:
            try:
                provider, values = self.url_map.bind_to_environ(environ).match()
            except MethodNotAllowed as exc:
                raise method_not_allowed(exc.valid_methods or ()) from None
            except HTTPException:
                raise not_found() from None
            request.path_values = values
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
        log.info(
            "http.request",
            method=request.method,
            path=provider.spec.template if provider is not None else None,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            request_id=request.request_id,
        )
        return response(environ, start_response)


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

    def get_environ(self):
        environ = super().get_environ()
        environ[_ENV_CLOSE] = self._close_after_response
        return environ

    # -- requests refused before they reach the application

    def handle_one_request(self) -> None:
        """eventlet's ``handle_one_request``, answering what it refuses itself (a request line or header
        over the limits, a malformed ``Content-Length``) with problem+json instead of an empty HTTP/1.0
        answer; everything else is eventlet's own path."""
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

        content_length = self.headers.get("content-length")
        if content_length is not None:
            if not (content_length.isascii() and content_length.isdigit()):
                self._refuse(malformed_request("Content-Length must be a number of bytes."))
                return
            if self.headers.get("transfer-encoding") is not None:
                self._refuse(malformed_request("Content-Length and Transfer-Encoding must not be sent together."))
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
        body = _dumps(problem.to_dict(instance=instance, request_id=request_id)).encode("utf-8")
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
                      converters={"id": IdConverter})
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
        if request.remote_addr:
            data["source_ip"] = request.remote_addr
        if request.principal is not None:
            data["actor_id"] = request.principal.actor_id
            data["actor_role"] = request.principal.role
        return data


# -- route declarations ----------------------------------------------------------


def _schema(value: Any, what: str) -> Schema | None:
    if value is None:
        return None
    if isinstance(value, type) and issubclass(value, Schema):
        return value()
    if isinstance(value, Schema):
        return value
    raise TypeError(f"{what} must be a marshmallow Schema class or instance, got {value!r}")


@dataclass(frozen=True)
class RouteSpec:
    """Everything declared about one route: the source of routing, guards and docs."""

    method: str
    path: str  # werkzeug rule, e.g. /v1/things/<uuid:thing_id>
    personal_data: bool  # reads or changes a person's data: each success is audited (x-personal-data)
    auth: str = "none"
    permission: str | None = None  # "<resource>.<action>", required with auth="required"
    body: Schema | RawBody | None = None
    query: Schema | None = None
    # a Schema, a JSON schema for the docs only, a BinaryResponse (the handler returns a Response)
    # or a StreamResponse (the handler returns a Stream)
    response: Schema | Mapping[str, Any] | BinaryResponse | StreamResponse | None = None
    status: int = 200
    summary: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    errors: tuple[int, ...] = ()
    # a write whose RPC calls carry an idempotency key (retried, never carried out twice); not for
    # calls whose answer must not be kept (tokens) nor for anonymous ones
    keyed: bool = False

    @property
    def path_variables(self) -> list[tuple[str, str]]:
        """``[(name, converter)]`` in path order."""
        return [(m["name"], m["converter"] or "default") for m in _PATH_VARIABLE.finditer(self.path)]

    @property
    def template(self) -> str:
        """The path in OpenAPI form (``/v1/things/{thing_id}``); also what access logs show."""
        return _PATH_VARIABLE.sub(lambda m: "{" + m["name"] + "}", self.path)

    @property
    def max_body_bytes(self) -> int:
        """The body size limit: the route's RawBody limit, else the JSON limit (1 MiB)."""
        return self.body.max_bytes if isinstance(self.body, RawBody) else MAX_BODY_BYTES

    @property
    def error_statuses(self) -> list[int]:
        statuses = {500, *self.errors}
        if isinstance(self.body, RawBody):
            statuses |= {400, 413, 415}
        elif self.body is not None:
            statuses |= {400, 413, 415, 422}
        if self.query is not None:
            statuses.add(422)
        if self.auth == "required":
            # 503: identity's keys or role map, or the revocation view, cannot be had
            statuses |= {401, 403, 503}
        if self.keyed:
            # a malformed Idempotency-Key (400), one reused for another request (422), a request carried
            # out before whose answer was not kept (409)
            statuses |= {400, 409, 422}
        return sorted(statuses)


class GatewayRoute(HttpRequestHandler):
    """The gateway's HTTP entrypoint (use :func:`route`)."""

    server = GatewayWebServer()
    access = AccessControl()

    def __init__(
        self,
        method: str,
        path: str,
        *,
        personal_data: bool | None = None,
        auth: str = "none",
        permission: str | None = None,
        body: Any = None,
        query: Any = None,
        response: Any = None,
        status: int = 200,
        summary: str = "",
        description: str = "",
        tags: Iterable[str] = (),
        errors: Iterable[int] = (),
        keyed: bool | None = None,
        **kwargs: Any,
    ) -> None:
        method = method.upper()
        if method not in METHODS:
            raise ValueError(f"route method must be one of {', '.join(METHODS)}, got {method!r}")
        if auth not in AUTH_MODES:
            raise ValueError(f"route auth must be one of {', '.join(AUTH_MODES)}, got {auth!r}")
        if not isinstance(personal_data, bool):
            raise ValueError(f"route {method} {path} must declare personal_data=True or False: does it read or "
                             f"change a person's data (then each success must be audited)? got {personal_data!r}")
        if "roles" in kwargs:
            raise ValueError("route roles= is gone: declare the permission the route needs (permission='users.read')")
        if auth == "required" and permission is None:
            raise ValueError(f"route {method} {path}: auth='required' needs permission='<resource>.<action>' "
                             "(access is denied by default)")
        if permission is not None and auth != "required":
            raise ValueError(f"route {method} {path}: a permission needs auth='required'")
        if permission is not None and not (isinstance(permission, str) and PERMISSION.match(permission)):
            raise ValueError(f"route permission must look like 'users.read', got {permission!r}")
        if body is not None and method in ("GET", "DELETE"):
            raise ValueError(f"{method} routes take no body")
        if not isinstance(response, Mapping | BinaryResponse | StreamResponse):
            response = _schema(response, "response")
        if response is None and status != 204:
            raise ValueError(f"route {method} {path} must declare its response (or status=204)")
        if keyed is None:
            keyed = method in WRITE_METHODS and auth == "required"
        if keyed and (method not in WRITE_METHODS or auth != "required"):
            raise ValueError(f"route {method} {path}: keyed=True is for writes of signed-in callers")
        self.spec = RouteSpec(
            method=method, path=path, personal_data=personal_data, auth=auth, permission=permission,
            body=body if isinstance(body, RawBody) else _schema(body, "body"),
            query=_schema(query, "query"), response=response, status=status, summary=summary,
            description=description, tags=tuple(tags), errors=tuple(errors), keyed=keyed,
        )
        super().__init__(method, path, **kwargs)

    # -- nameko life cycle

    def setup(self) -> None:
        service_cls = self.container.service_cls
        declared = getattr(service_cls, "authenticator", None) or NoAuthenticator()
        authenticator = declared.bind(self.access) if isinstance(declared, AuthenticatorFactory) else declared
        if not isinstance(authenticator, Authenticator):
            raise ConfigurationError(f"{service_cls.__name__}.authenticator has no authenticate(request)")
        if self.spec.auth == "required" and not hasattr(service_cls, "db"):
            raise ConfigurationError(f"{service_cls.__name__} has auth='required' routes but no `db` "
                                     "(Database) dependency to audit refusals in")
        self.authenticator = authenticator
        self._check_handler_signature()
        super().setup()

    def _check_handler_signature(self) -> None:
        handler = getattr(self.container.service_cls, self.method_name)
        names = [name for name, _ in self.spec.path_variables]
        names += [name for name, schema in (("body", self.spec.body), ("query", self.spec.query)) if schema]
        try:
            inspect.signature(handler).bind(None, None, **dict.fromkeys(names))
        except TypeError as exc:
            raise ConfigurationError(
                f"handler {self.method_name} must take (self, request, {', '.join(names)}): {exc}"
            ) from None

    def get_url_rule(self) -> Rule:
        return Rule(self.spec.path, methods=[self.spec.method])

    def check_signature(self, args, kwargs) -> None:  # checked once, at setup
        pass

    # -- a request

    def handle_request(self, request: GatewayRequest) -> Response:
        request.shallow = False
        request.route = self.spec
        request.principal = self._authenticate(request)
        kwargs = dict(request.path_values)
        # A refused request is not read further: its worker only audits the refusal (see route()),
        # and its unread body is not worth keeping the connection for.
        if permitted(request):
            if self.spec.keyed:
                request.idempotency_key = accept_idempotency_key(request.headers.get(IDEMPOTENCY_KEY_HEADER))
                request.idempotency_base = f"{request.principal.actor_id}:{request.idempotency_key}"
            if isinstance(self.spec.body, RawBody):
                kwargs["body"] = self._load_raw_body(request)
            elif self.spec.body is not None:
                kwargs["body"] = self._load_body(request)
            if self.spec.query is not None:
                kwargs["query"] = self._load_query(request)
        elif self.spec.body is not None:
            close_connection_after_response(request.environ)
        context_data = self.server.context_data_from_headers(request)

        done = Event()
        try:
            self.container.spawn_worker(
                self, (request,), kwargs, context_data=context_data,
                handle_result=partial(self.handle_result, done),
            )
        except ContainerBeingKilled:
            raise service_unavailable("The gateway is shutting down.") from None
        return done.wait()

    def handle_result(self, done: Event, worker_ctx, result, exc_info):
        """Runs in the worker's green thread: turn the outcome into a response."""
        request = worker_ctx.args[0]
        pipe = chunks = None
        try:
            if exc_info is not None:
                response = problem_response(problem_from_exception(exc_info[1]), request)
            elif isinstance(result, Stream):
                try:
                    response, pipe, chunks = self.stream_response(request, result)
                except Exception as exc:  # before anything is sent: an ordinary error answer
                    response = problem_response(problem_from_exception(exc), request)
            else:
                response = self.response_from_result(request, result)
        except Exception:
            log.error("http.response_failed", route=self.spec.template, exc_info=True)
            response = problem_response(internal_error(), request)
        done.send(response)
        if pipe is not None:  # still in the worker: its dependencies are torn down after this
            pipe.feed(chunks, getattr(result.chunks, "close", None), route=self.spec.template,
                      request_id=request.request_id)
        return result, exc_info

    def stream_response(self, request: GatewayRequest, stream: Stream) -> tuple[Response, _Pipe, Iterator]:
        """The response of a :class:`Stream`, once its first chunk is produced (a failure before it is
        answered as any handler error); the pipe to feed and the remaining chunks."""
        if not isinstance(self.spec.response, StreamResponse):
            raise TypeError(f"{self.spec.method} {self.spec.path} returned a Stream but does not declare "
                            "response=StreamResponse(...)")
        chunks = iter(stream.chunks)
        try:
            first = next(chunks)
        except StopIteration:
            pass
        else:
            chunks = itertools.chain((first,), chunks)
        pipe = _Pipe()
        # each chunk goes out as it comes (eventlet would otherwise hold back writes under 4 KiB)
        request.environ["eventlet.minimum_write_chunk_size"] = 0
        response = Response(pipe, status=self.spec.status, headers=dict(stream.headers),
                            content_type=self.spec.response.content_type)
        return response, pipe, chunks

    def response_from_result(self, request: GatewayRequest, result: Any) -> Response:
        if isinstance(result, Response):
            return result
        if isinstance(result, Problem):
            return problem_response(result, request)
        status, headers, payload = self.spec.status, {}, result
        if isinstance(result, Reply):
            status, headers, payload = result.status or self.spec.status, dict(result.headers), result.payload
        if status == 204:
            return Response(status=204, headers=headers)
        if isinstance(self.spec.response, Schema) and status == self.spec.status:
            payload = self.spec.response.dump(payload)
        return json_response(payload, status, headers)

    # -- guards

    def _authenticate(self, request: GatewayRequest) -> Principal | None:
        if self.spec.auth == "none":
            return None
        principal = self.authenticator.authenticate(request)
        if principal is None:
            raise unauthenticated()
        return principal

    def _read_body(self, request: GatewayRequest, limit: int) -> bytes:
        # Content-Length was checked before dispatch; this bounds chunked bodies.
        try:
            raw = request.environ["wsgi.input"].read(limit + 1)
        except (OSError, ValueError):  # timed out, reset, or broken chunked encoding
            close_connection_after_response(request.environ)
            raise malformed_request("The request body could not be read.") from None
        if len(raw) > limit:
            close_connection_after_response(request.environ)
            raise payload_too_large(limit)
        return raw

    def _load_raw_body(self, request: GatewayRequest) -> bytes:
        spec: RawBody = self.spec.body
        if request.mimetype not in spec.content_types:
            raise unsupported_media_type(" or ".join(spec.content_types))
        raw = self._read_body(request, spec.max_bytes)
        if not raw:
            raise malformed_request("A request body is required.")
        return raw

    def _load_body(self, request: GatewayRequest) -> Any:
        mimetype = request.mimetype
        if not (mimetype == JSON_CONTENT_TYPE or (mimetype.startswith("application/") and mimetype.endswith("+json"))):
            raise unsupported_media_type(JSON_CONTENT_TYPE)
        charset = request.mimetype_params.get("charset", "utf-8").lower()
        if charset not in ("utf-8", "utf8"):
            raise unsupported_media_type(f"{JSON_CONTENT_TYPE} in UTF-8")
        raw = self._read_body(request, MAX_BODY_BYTES)
        if not raw.strip():
            raise malformed_request("A JSON request body is required.")
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
        except DuplicateKey as exc:
            raise duplicate_key(exc.key) from None
        except (ValueError, RecursionError):
            raise malformed_request("The request body is not valid JSON.") from None
        if _has_lone_surrogate(data):  # "\\ud800" escapes are valid JSON but no character: nothing can store them
            raise malformed_request("The request body holds a \\u escape of a lone UTF-16 surrogate, not a character.")
        try:
            return self.spec.body.load(data)
        except ValidationError as exc:
            raise validation_failed(exc, "body") from None

    def _load_query(self, request: GatewayRequest) -> Any:
        schema = self.spec.query
        multi = {f.data_key or name for name, f in schema.fields.items() if isinstance(f, ma_fields.List)}
        data = {key: request.args.getlist(key) if key in multi else request.args.get(key) for key in request.args}
        try:
            return schema.load(data)
        except ValidationError as exc:
            raise validation_failed(exc, "query") from None


_END = object()


class _Pipe:
    """Chunks of a :class:`Stream` from the route's worker to the HTTP connection.

    The worker (:meth:`feed`) waits while the client is slow (a few chunks are
    held at most) and gives up once the connection is done with the response
    (:meth:`close`, called by the WSGI server). The connection's side is the
    WSGI response body (iterating this object).
    """

    max_chunks = 4
    poll_s = 1.0
    idle_timeout_s = 120.0  # the worker produced nothing for this long: end the transfer

    def __init__(self) -> None:
        self._queue: LightQueue = LightQueue(self.max_chunks)
        self.closed = False  # the connection is done with the response (sent, or the client left)
        self.finished = False  # the worker produced its last chunk (or failed)
        self.failed = False

    # -- the worker's side

    def feed(self, chunks: Iterable[bytes | str], close: Callable[[], Any] | None = None, **log_context: Any) -> None:
        """Send ``chunks`` (then call ``close``, the source's, if given), in the worker."""
        count = 0
        try:
            for chunk in chunks:
                data = chunk if isinstance(chunk, bytes) else chunk.encode("utf-8")
                if data and not self._put(data):  # the client went away, or stopped reading
                    self.failed = True
                    log.info("http.stream_abandoned", chunks=count, **log_context)
                    return
                count += 1
        except Exception:
            self.failed = True
            log.error("http.stream_failed", chunks=count, **log_context, exc_info=True)
        finally:
            try:
                if close is not None:
                    close()  # a generator left early runs its cleanup now, in the worker
            except Exception:
                log.error("http.stream_close_failed", **log_context, exc_info=True)
            self.finished = True
            try:
                self._queue.put_nowait(_END)
            except Full:  # the connection sees `finished` once it has taken what is queued
                pass

    def _put(self, data: bytes) -> bool:
        waited = 0.0
        while not self.closed and waited < self.idle_timeout_s:  # (a connection that died unseen)
            try:
                self._queue.put(data, timeout=self.poll_s)
                return True
            except Full:
                waited += self.poll_s
        return False

    # -- the connection's side (the WSGI response body)

    def __iter__(self):
        idle = 0.0
        while True:
            try:
                item = self._queue.get(timeout=self.poll_s)
            except Empty:
                if self.finished:
                    break
                idle += self.poll_s
                if idle >= self.idle_timeout_s:
                    log.error("http.stream_stalled", idle_s=idle)
                    self.failed = True
                    break
                continue
            if item is _END:
                break
            idle = 0.0
            yield item
        if self.failed:
            # End the transfer without its final chunk: the client must see a truncated body.
            wsgi.WSGI_LOCAL.already_handled = True

    def close(self) -> None:
        self.closed = True


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _has_lone_surrogate(data: Any) -> bool:
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class DuplicateKey(Exception):
    """A JSON object names the same member twice (RFC 8259 section 4: its meaning is undefined)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` refusing a repeated member: parsers disagree on which value wins
    (the first, the last, an error), and such differentials between a checker and a consumer
    are an attack vector. Nothing downstream ever sees an ambiguous body."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise DuplicateKey(key)
        data[key] = value
    return data


def permitted(request: GatewayRequest) -> bool:
    """Whether the request's principal holds its route's permission (public routes: always)."""
    permission = request.route.permission if request.route is not None else None
    return permission is None or (request.principal is not None and request.principal.can(permission))


def route(method: str, path: str, **options: Any) -> Callable:
    """Declare an HTTP route of the gateway (see the module docstring)."""
    entrypoint = GatewayRoute.decorator(method, path, **options)

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def handler(self, request: GatewayRequest, *args: Any, **kwargs: Any) -> Any:
            # Errors become answers here, in the worker, so they are logged once
            # (with the worker's request context) and never by nameko.
            try:
                if not permitted(request):
                    return deny(self, request)
                return fn(self, request, *args, **kwargs)
            except Exception as exc:
                return problem_from_exception(exc)

        return entrypoint(handler)

    return decorate


def problem_from_exception(exc: BaseException) -> Problem:
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, ServiceError):
        return problem_from_service_error(exc)
    if isinstance(exc, RpcUnavailable):
        log.warning("http.service_unavailable", downstream=exc.service, method=exc.method, reason=exc.reason)
        return service_unavailable()
    log.error("http.unhandled_exception", error_type=type(exc).__name__,
              exc_info=(type(exc), exc, exc.__traceback__))
    return internal_error()


# -- responses -------------------------------------------------------------------


def _dumps(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(_dumps(payload), status=status, headers=dict(headers or {}), content_type=JSON_CONTENT_TYPE)


def problem_response(problem: Problem, request: Request) -> Response:
    body = problem.to_dict(instance=request.path, request_id=getattr(request, "request_id", None))
    return Response(_dumps(body), status=problem.status, headers=problem.headers, content_type=PROBLEM_CONTENT_TYPE)


def close_connection_after_response(environ: Mapping[str, Any]) -> None:
    """Do not keep this connection alive (its unread body is not worth reading)."""
    close = environ.get(_ENV_CLOSE)
    if close is not None:
        close()
