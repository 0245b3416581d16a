"""Routing: the gateway's HTTP entrypoint and the :func:`route` decorator that declares one.

Every route is declared once with :func:`route`; that one declaration drives
the URL map, the request guards (auth, permission, body size, content type,
JSON, validation: :mod:`.guards`) and the OpenAPI document (:mod:`.openapi`)::

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
gateway's own database (:func:`.guards.deny`).

A handler receives the :class:`~.request.GatewayRequest` (``request.request_id``,
``request.principal``), the path variables by name, ``body=`` (the loaded
``body`` schema, or ``bytes`` for a :class:`~.bodies.RawBody`)
and ``query=`` (the loaded ``query`` schema) when declared.
It returns the payload (dumped through ``response`` and answered with
``status``), a :class:`~.responses.Reply` for another status or extra
headers, a :class:`~.streaming.Stream` (a route declared with a
:class:`~.bodies.StreamResponse`), or raises a :class:`~.problems.Problem`.
Anything else it raises is logged with its traceback and answered as a
generic 500 problem (:func:`~.responses.problem_from_exception`).
"""

from __future__ import annotations

import functools
import inspect
import itertools
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from eventlet.event import Event
from nameko.exceptions import ConfigurationError, ContainerBeingKilled
from nameko.web.handlers import HttpRequestHandler
from upgestao_kernel.logging import get_logger
from werkzeug.routing import Rule
from werkzeug.wrappers import Response

from ...access.authentication import Authenticator, AuthenticatorFactory, NoAuthenticator
from ..dependencies import AccessControl, IdempotencyInFlight, RateLimiting
from .bodies import RawBody, StreamResponse
from .guards import (
    accept_idempotency_key,
    authenticate,
    claim_idempotency_key,
    deny,
    limit_rate,
    load_body,
    load_query,
    load_raw_body,
    permitted,
)
from .problems import Problem, internal_error, service_unavailable
from .request import IDEMPOTENCY_KEY_HEADER, GatewayRequest, close_connection_after_response
from .responses import Reply, json_response, problem_from_exception, problem_response
from .server import GatewayWebServer
from .spec import declare_route
from .streaming import Pipe, Stream

log = get_logger(__name__)

_SPEC_OPTIONS = frozenset(inspect.signature(declare_route).parameters) - {"method", "path"}


class GatewayRoute(HttpRequestHandler):
    """The gateway's HTTP entrypoint (use :func:`route`)."""

    # the worker's context is built here, from the token this route verified itself: trusted as given
    # (an entrypoint fed by the broker never is: upgestao_kernel.nameko_ext.principals)
    trusted_context = True

    server = GatewayWebServer()
    access = AccessControl()
    rate_limits = RateLimiting()
    in_flight = IdempotencyInFlight()

    def __init__(self, method: str, path: str, **options: Any) -> None:
        # what the route declares makes its spec; anything else is nameko's (an unknown option fails there)
        self.spec = declare_route(method, path, **{k: v for k, v in options.items() if k in _SPEC_OPTIONS})
        super().__init__(self.spec.method, path, **{k: v for k, v in options.items() if k not in _SPEC_OPTIONS})

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
        request.principal = authenticate(self.spec, self.authenticator, request)
        if request.principal is not None:  # the principal's quota (429 before anything runs)
            limit_rate(self.rate_limits.check(request.principal), request)
        kwargs = dict(request.path_values)
        claimed = None  # the client's Idempotency-Key, held while this request is in flight
        try:
            # A refused request is not read further: its worker only audits the refusal (see route()),
            # and its unread body is not worth keeping the connection for.
            if permitted(request):
                if self.spec.keyed:
                    given = request.headers.get(IDEMPOTENCY_KEY_HEADER)
                    request.idempotency_key = accept_idempotency_key(given)
                    request.idempotency_base = f"{request.principal.actor_id}:{request.idempotency_key}"
                    if given is not None:  # one the gateway draws is unique
                        claimed = claim_idempotency_key(self.in_flight.keys, request.idempotency_base)
                if isinstance(self.spec.body, RawBody):
                    kwargs["body"] = load_raw_body(self.spec.body, request)
                elif self.spec.body is not None:
                    kwargs["body"] = load_body(self.spec.body, request)
                if self.spec.query is not None:
                    kwargs["query"] = load_query(self.spec.query, request)
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
        finally:
            if claimed is not None:
                self.in_flight.keys.release(claimed)

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

    def stream_response(self, request: GatewayRequest, stream: Stream) -> tuple[Response, Pipe, Iterator]:
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
        pipe = Pipe()
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
        dump = self.spec.dump_response
        if dump is not None and status == self.spec.status:
            payload = dump(payload)
        return json_response(payload, status, headers)


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
