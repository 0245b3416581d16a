"""What a route declares: the one source of its URL rule, its guards and its OpenAPI operation.

:func:`declare_route` checks a declaration once, at import: access is denied by default (an
``auth="required"`` route names the permission it needs), every route says whether it reads or changes
a person's data, a route answering something declares what (or ``status=204``), and only writes of
signed-in callers are keyed (their RPC calls carry an idempotency key).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from marshmallow import Schema

from .bodies import BinaryResponse, RawBody, StreamResponse
from .dumping import Dump, compile_dump

MAX_BODY_BYTES = 1 << 20  # 1 MiB
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
AUTH_MODES = ("none", "required")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
PERMISSION = re.compile(r"^[a-z][a-z0-9_-]*\.[a-z][a-z0-9_-]*$")
_PATH_VARIABLE = re.compile(r"<(?:(?P<converter>[A-Za-z_]\w*)(?:\([^)]*\))?:)?(?P<name>[A-Za-z_]\w*)>")
_ABSENT = object()


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
    # other permissions any one of which also lets a caller through: a route over two kinds of thing (a
    # message of a customer conversation, or of a staff chat) that the service behind it tells apart
    alternatives: tuple[str, ...] = ()
    body: Schema | RawBody | None = None
    query: Schema | None = None
    # a Schema, a JSON schema for the docs only, a BinaryResponse (the handler returns a Response)
    # or a StreamResponse (the handler returns a Stream)
    response: Schema | Mapping[str, Any] | BinaryResponse | StreamResponse | None = None
    status: int = 200
    # the status of a create answered with what exists already (an idempotent repeat: 200), same body
    repeat_status: int | None = None
    summary: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    errors: tuple[int, ...] = ()
    # a write whose RPC calls carry an idempotency key (retried, never carried out twice); not for
    # calls whose answer must not be kept (tokens) nor for anonymous ones
    keyed: bool = False

    # derived once (every request reads them): the declaration is frozen

    @cached_property
    def path_variables(self) -> list[tuple[str, str]]:
        """``[(name, converter)]`` in path order."""
        return [(m["name"], m["converter"] or "default") for m in _PATH_VARIABLE.finditer(self.path)]

    @cached_property
    def template(self) -> str:
        """The path in OpenAPI form (``/v1/things/{thing_id}``); also what access logs show."""
        return _PATH_VARIABLE.sub(lambda m: "{" + m["name"] + "}", self.path)

    @cached_property
    def dump_response(self) -> Dump | None:
        """The ``response`` schema's ``dump``, compiled (:mod:`.dumping`); None when it is not a schema."""
        return compile_dump(self.response) if isinstance(self.response, Schema) else None

    @property
    def max_body_bytes(self) -> int:
        """The body size limit: the route's RawBody limit, else the JSON limit (1 MiB)."""
        return self.body.max_bytes if isinstance(self.body, RawBody) else MAX_BODY_BYTES

    @property
    def error_statuses(self) -> list[int]:
        statuses = {500, *self.errors}
        if any(converter == "uuid" for _, converter in self.path_variables):
            statuses.add(422)  # a path id that is not a UUID
        if isinstance(self.body, RawBody):
            statuses |= {400, 413, 415}
        elif self.body is not None:
            statuses |= {400, 413, 415, 422}
        if self.query is not None:
            statuses.add(422)
        if self.auth == "required":
            # 503: identity's keys or role map, or the revocation view, cannot be had; 429: the caller's
            # rate limit
            statuses |= {401, 403, 429, 503}
        if self.keyed:
            # a malformed Idempotency-Key (400), one reused for another request (422), a request carried
            # out before whose answer was not kept (409)
            statuses |= {400, 409, 422}
        return sorted(statuses)


def declare_route(
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
    repeat_status: int | None = None,
    summary: str = "",
    description: str = "",
    tags: Iterable[str] = (),
    errors: Iterable[int] = (),
    keyed: bool | None = None,
    alternatives: Iterable[str] = (),
    roles: Any = _ABSENT,
) -> RouteSpec:
    """The :class:`RouteSpec` of a declaration; ``ValueError``/``TypeError`` say what is wrong with it."""
    method = method.upper()
    if method not in METHODS:
        raise ValueError(f"route method must be one of {', '.join(METHODS)}, got {method!r}")
    if auth not in AUTH_MODES:
        raise ValueError(f"route auth must be one of {', '.join(AUTH_MODES)}, got {auth!r}")
    if not isinstance(personal_data, bool):
        raise ValueError(f"route {method} {path} must declare personal_data=True or False: does it read or "
                         f"change a person's data (then each success must be audited)? got {personal_data!r}")
    if roles is not _ABSENT:
        raise ValueError("route roles= is gone: declare the permission the route needs (permission='users.read')")
    if auth == "required" and permission is None:
        raise ValueError(f"route {method} {path}: auth='required' needs permission='<resource>.<action>' "
                         "(access is denied by default)")
    if permission is not None and auth != "required":
        raise ValueError(f"route {method} {path}: a permission needs auth='required'")
    if permission is not None and not (isinstance(permission, str) and PERMISSION.match(permission)):
        raise ValueError(f"route permission must look like 'users.read', got {permission!r}")
    alternatives = tuple(alternatives)
    if alternatives and permission is None:
        raise ValueError(f"route {method} {path}: alternatives= are other permissions besides permission=")
    if not all(isinstance(p, str) and PERMISSION.match(p) for p in alternatives):
        raise ValueError(f"route alternatives must look like ('chats.use',), got {alternatives!r}")
    if body is not None and method in ("GET", "DELETE"):
        raise ValueError(f"{method} routes take no body")
    if not isinstance(response, Mapping | BinaryResponse | StreamResponse):
        response = _schema(response, "response")
    if response is None and status != 204:
        raise ValueError(f"route {method} {path} must declare its response (or status=204)")
    if repeat_status is not None and not (200 <= repeat_status < 300 and repeat_status != status):
        raise ValueError(f"route {method} {path}: repeat_status is another 2xx than status")
    if keyed is None:
        keyed = method in WRITE_METHODS and auth == "required"
    if keyed and (method not in WRITE_METHODS or auth != "required"):
        raise ValueError(f"route {method} {path}: keyed=True is for writes of signed-in callers")
    return RouteSpec(
        method=method, path=path, personal_data=personal_data, auth=auth, permission=permission,
        body=body if isinstance(body, RawBody) else _schema(body, "body"),
        query=_schema(query, "query"), response=response, status=status, repeat_status=repeat_status,
        summary=summary,
        description=description, tags=tuple(tags), errors=tuple(errors), keyed=keyed, alternatives=alternatives,
    )
