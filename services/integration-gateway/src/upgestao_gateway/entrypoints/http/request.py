"""The request as the gateway's routes see it: its id, its route, its caller.

A request id (``X-Request-ID``) is the client's when well-formed, else a new UUID; it is on every
answer and travels with every RPC. A keyed write's ``Idempotency-Key`` is checked by the guards
(:func:`~.guards.accept_idempotency_key`) and answered in the same header. ``<id:name>`` path
variables take the ids that are not UUIDs (a data subject's, an actor's). The WSGI server puts a
callable in the environ (:data:`ENV_CLOSE`) that the guards call when a request's unread body is not
worth keeping its connection for.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from werkzeug.routing import BaseConverter
from werkzeug.wrappers import Request

from ...domain.principal import Principal
from .spec import RouteSpec

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._-]{8,128}$"
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)
# An id that is not a UUID (a data subject's, an actor's, a service's): what the `id` path converter takes.
ID_CHARACTERS = r"[A-Za-z0-9._:-]{1,128}"
ID_PATTERN = f"^{ID_CHARACTERS}$"
# A write's idempotency key (the IETF draft's header; a structured-field string, quoted or not):
# the same key again is answered as the first time, never carried out twice (keyed requests).
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9._:-]{8,128}$"
ENV_CLOSE = "upgestao.close_connection"


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


def close_connection_after_response(environ: Mapping[str, Any]) -> None:
    """Do not keep this connection alive (its unread body is not worth reading)."""
    close = environ.get(ENV_CLOSE)
    if close is not None:
        close()
