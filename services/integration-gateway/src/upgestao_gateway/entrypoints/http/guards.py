"""The request guards: what a request must pass before (and as) its handler runs.

In order: authentication (401, before the worker: :func:`authenticate`), the principal's rate limit
(429, before the worker: :func:`limit_rate`), the permission (403, in the worker, audited:
:func:`permitted`, :func:`deny`), a keyed write's ``Idempotency-Key`` (:func:`accept_idempotency_key`;
409 while a request with the same client-given key is in flight: :func:`claim_idempotency_key`), then
the body and query: a JSON body must be ``application/json`` (or ``application/*+json``) in UTF-8 (415),
within 1 MiB (413), valid JSON (400) naming no member twice (400: parsers disagree on which value wins)
and holding no lone surrogate (400), then valid for its schema (422); a ``RawBody`` must be one of its
media types (415), within its limit (413) and not empty (400); a query must be valid for its schema
(422). A refused request's body is not read.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from marshmallow import Schema, ValidationError
from marshmallow import fields as ma_fields

from ...access.authentication import Authenticator
from ...domain.in_flight import InFlightKeys
from ...domain.principal import Principal
from ...domain.rate_limits import Decision
from ...service_layer.denials import record_denial
from .bodies import RawBody
from .problems import (
    Problem,
    duplicate_key,
    idempotency_key_in_use,
    malformed_request,
    missing_permission,
    payload_too_large,
    rate_limited,
    unauthenticated,
    unsupported_media_type,
    validation_failed,
)
from .request import IDEMPOTENCY_KEY_HEADER, IDEMPOTENCY_KEY_PATTERN, GatewayRequest, close_connection_after_response
from .responses import JSON_CONTENT_TYPE
from .spec import MAX_BODY_BYTES, RouteSpec

_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


def authenticate(spec: RouteSpec, authenticator: Authenticator, request: GatewayRequest) -> Principal | None:
    """The request's principal (public routes: none); 401 without acceptable credentials."""
    if spec.auth == "none":
        return None
    principal = authenticator.authenticate(request)
    if principal is None:
        raise unauthenticated()
    return principal


def limit_rate(decision: Decision | None, request: GatewayRequest) -> None:
    """Keep the principal's rate-limit ``decision`` for the answer's ``RateLimit-*`` headers (the server
    adds them to whatever is answered); a refused request is 429, before its route runs (it changes
    nothing, and nothing of it is read)."""
    request.rate_limit = decision
    if decision is not None and not decision.allowed:
        if request.route is not None and request.route.body is not None:  # its body is not read
            close_connection_after_response(request.environ)
        raise rate_limited(decision.headers())


def claim_idempotency_key(in_flight: InFlightKeys, base: str) -> str:
    """Hold ``base`` (the caller's scoped key) while its request runs; 409 with ``Retry-After`` when a
    request holding it is still in flight here. The caller releases it once answered."""
    if not in_flight.claim(base):
        raise idempotency_key_in_use()
    return base


def read_body(request: GatewayRequest, limit: int) -> bytes:
    """At most ``limit`` bytes of the body (413 beyond, 400 when it cannot be read)."""
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


def load_raw_body(body: RawBody, request: GatewayRequest) -> bytes:
    """The body of a ``RawBody`` route: one of its media types (415), within its limit, not empty."""
    if request.mimetype not in body.content_types:
        raise unsupported_media_type(" or ".join(body.content_types))
    raw = read_body(request, body.max_bytes)
    if not raw:
        raise malformed_request("A request body is required.")
    return raw


def load_body(schema: Schema, request: GatewayRequest) -> Any:
    """A JSON body (UTF-8, within 1 MiB, no repeated member, no lone surrogate), loaded by ``schema``."""
    mimetype = request.mimetype
    if not (mimetype == JSON_CONTENT_TYPE or (mimetype.startswith("application/") and mimetype.endswith("+json"))):
        raise unsupported_media_type(JSON_CONTENT_TYPE)
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise unsupported_media_type(f"{JSON_CONTENT_TYPE} in UTF-8")
    raw = read_body(request, MAX_BODY_BYTES)
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
        return schema.load(data)
    except ValidationError as exc:
        raise validation_failed(exc, "body") from None


def load_query(schema: Schema, request: GatewayRequest) -> Any:
    """The query string loaded by ``schema`` (a ``List`` field takes every value of its parameter)."""
    multi = {f.data_key or name for name, f in schema.fields.items() if isinstance(f, ma_fields.List)}
    data = {key: request.args.getlist(key) if key in multi else request.args.get(key) for key in request.args}
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise validation_failed(exc, "query") from None


def permitted(request: GatewayRequest) -> bool:
    """Whether the request's principal holds its route's permission, or one of its alternatives (public
    routes: always)."""
    route = request.route
    if route is None or route.permission is None:
        return True
    principal = request.principal
    return principal is not None and any(principal.can(p) for p in (route.permission, *route.alternatives))


def deny(service: Any, request: GatewayRequest, permission: str | None = None) -> Problem:
    """Audit the refusal through ``service.db`` and return the 403 problem to raise or return.

    Routes get this automatically (``permission=``); a handler making a finer check does the same::

        if not request.principal.can("users.update"):
            raise deny(self, request, "users.update")
    """
    spec = request.route
    permission = permission or spec.permission
    record_denial(lambda: service.db.unit_of_work(), spec, spec.template, permission,
                  getattr(request, "path_values", {}), request.principal.role if request.principal else None)
    return missing_permission(permission)


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
