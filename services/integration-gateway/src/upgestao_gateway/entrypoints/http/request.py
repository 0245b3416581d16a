"""The request as the gateway's routes see it: its id, its route, its caller.

A request id (``X-Request-ID``) is the client's when it matches :data:`REQUEST_ID_PATTERN`, else a new
UUID (a name, a 10 KB string or anything else a client sends never reaches a log line, an RPC or an
audit record); the id used is on every answer and travels with every RPC. A keyed write's
``Idempotency-Key`` is checked by the guards (:func:`~.guards.accept_idempotency_key`) and answered in
the same header.

Every id in a path is a UUID: a ``<uuid:name>`` variable matches any one path segment, and
:func:`check_path_ids` refuses one that is not a UUID with a 422 naming the variable, before the
request is authenticated, its permission checked or anything recorded (a refused summary of
``/v1/audit/subjects/Maria Silva`` used to store the name as the audit record's subject, forever).
The WSGI server puts a callable in the environ (:data:`ENV_CLOSE`) that the guards call when a
request's unread body is not worth keeping its connection for.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from werkzeug.routing import BaseConverter
from werkzeug.wrappers import Request

from ...domain.principal import Principal
from ...domain.rate_limits import Decision
from .spec import RouteSpec

REQUEST_ID_HEADER = "X-Request-ID"
# at most 64: what an event keeps of it (``events.correlation_id``); a longer one was a 500 on every write
REQUEST_ID_MAX = 64
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._-]{8,64}$"
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)
# An id that is not a UUID (an actor's, a service's), in a query filter: never in a path.
ID_CHARACTERS = r"[A-Za-z0-9._:-]{1,128}"
ID_PATTERN = f"^{ID_CHARACTERS}$"
# A write's idempotency key (the IETF draft's header; a structured-field string, quoted or not):
# the same key again is answered as the first time, never carried out twice (keyed requests).
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9._:-]{8,128}$"
ENV_CLOSE = "upgestao.close_connection"


_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


def accept_request_id(value: str | None) -> str:
    """The client's request id when well-formed, else a new one."""
    if value and len(value) <= REQUEST_ID_MAX and _REQUEST_ID.fullmatch(value):
        return value
    return str(uuid.uuid4())


class PathSegment(BaseConverter):
    """``<uuid:name>``: any one path segment, checked by :func:`check_path_ids` (a 422 naming the variable,
    not werkzeug's 404: the client learns which part of its request is wrong)."""

    part_isolating = True


def check_path_ids(spec: RouteSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with each ``<uuid:...>`` variable as a :class:`uuid.UUID`; a 422 problem (naming each
    bad variable, never quoting it) when one is not a UUID."""
    from .problems import Problem

    checked, errors = dict(values), []
    for name, converter in spec.path_variables:
        if converter != "uuid" or name not in values:
            continue
        value = values[name]
        if isinstance(value, str) and _UUID.fullmatch(value):
            checked[name] = uuid.UUID(value)
        else:
            errors.append({"field": name, "message": "must be a UUID"})
    if errors:
        raise Problem("validation-error", "The request path is invalid.", errors=errors)
    return checked


class GatewayRequest(Request):
    request_id: str = ""
    idempotency_key: str | None = None  # a keyed route's (the client's, or generated and answered)
    idempotency_base: str | None = None  # the key scoped to the caller: what the RPC keys start with
    principal: Principal | None = None
    rate_limit: Decision | None = None  # the principal's quota after this request (RateLimit-* headers)
    client_address: str | None = None  # the peer, or what trusted proxies say (domain.client_address)
    operator: bool = False  # a direct request from an operator network (readiness details)
    from_trusted_proxy: bool = False  # relayed by GATEWAY_TRUSTED_PROXIES (its traceparent is believed)
    route: RouteSpec | None = None
    path_values: dict[str, Any]


def close_connection_after_response(environ: Mapping[str, Any]) -> None:
    """Do not keep this connection alive (its unread body is not worth reading)."""
    close = environ.get(ENV_CLOSE)
    if close is not None:
        close()
