"""Errors as RFC 9457 problem details (``application/problem+json``).

Every error the gateway answers is a :class:`Problem`. Handlers raise one (or
one of the constructors below); anything else that escapes a handler becomes
a generic 500 whose details go to the logs only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from marshmallow import ValidationError
from upgestao_kernel.errors import ServiceError

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "https://upgestao.com.br/problems/"

# type slug -> (status, title). The title is the same for every occurrence of a type.
# Services name these slugs in the ServiceErrors they raise (upgestao_kernel.errors).
PROBLEM_TYPES: dict[str, tuple[int, str]] = {
    "malformed-request": (400, "Malformed request"),
    "unauthenticated": (401, "Authentication required"),
    "invalid-credentials": (401, "Invalid credentials"),
    "invalid-token": (401, "Invalid token"),
    "forbidden": (403, "Forbidden"),
    "correction-required": (403, "Correction required"),
    "csrf": (403, "Cross-site request refused"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "conflict": (409, "Conflict"),
    "request-already-applied": (409, "Request already carried out"),
    "idempotency-key-in-use": (409, "Idempotency-Key in use"),
    "gone": (410, "Gone"),
    "payload-too-large": (413, "Payload too large"),
    "uri-too-long": (414, "URI too long"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "validation-error": (422, "Validation error"),
    "idempotency-key-reused": (422, "Idempotency-Key reused"),
    "too-many-requests": (429, "Too many requests"),
    "rate-limited": (429, "Rate limit exceeded"),
    "header-fields-too-large": (431, "Request header fields too large"),
    "internal-error": (500, "Internal server error"),
    "service-unavailable": (503, "Service unavailable"),
    "not-ready": (503, "Not ready"),
    "http-version-not-supported": (505, "HTTP version not supported"),
}


def problem_type_uri(slug: str) -> str:
    return PROBLEM_BASE + slug


class Problem(Exception):
    """An error answer. ``extensions`` become extra members of the document."""

    def __init__(
        self,
        slug: str,
        detail: str,
        *,
        status: int | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        default_status, default_title = PROBLEM_TYPES.get(slug, (500, "Error"))
        self.type = problem_type_uri(slug)
        self.status = status or default_status
        self.title = title or default_title
        self.detail = detail
        self.headers = dict(headers or {})
        self.extensions = extensions
        super().__init__(f"{self.status} {self.title}: {detail}")

    def to_dict(self, instance: str, request_id: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        }
        if request_id:
            doc["request_id"] = request_id
        doc.update(self.extensions)
        return doc


# -- constructors for the errors the gateway itself produces --------------------


def malformed_request(detail: str) -> Problem:
    return Problem("malformed-request", detail)


def duplicate_key(key: str) -> Problem:
    """400 naming a member a JSON object of the body gives twice."""
    shown = key if len(key) <= 100 else key[:100] + "…"
    return Problem("malformed-request", f"The request body gives the member {shown!r} more than once.",
                   errors=[{"field": shown, "message": "is given more than once"}])


def uri_too_long(limit: int) -> Problem:
    return Problem("uri-too-long", f"The request line must be shorter than {limit} bytes.")


def header_fields_too_large(line_limit: int, total_limit: int) -> Problem:
    return Problem("header-fields-too-large", f"Each header line must be shorter than {line_limit} bytes and "
                   f"all of them together at most {total_limit} bytes (at most 100 header fields).")


def http_version_not_supported() -> Problem:
    return Problem("http-version-not-supported", "Only HTTP/1.0 and HTTP/1.1 are served here.")


def not_found() -> Problem:
    return Problem("not-found", "No resource is found at this path.")


def method_not_allowed(allowed: Iterable[str]) -> Problem:
    allow = ", ".join(sorted(set(allowed)))
    return Problem("method-not-allowed", f"Allowed methods: {allow}.", headers={"Allow": allow})


def payload_too_large(limit: int) -> Problem:
    return Problem("payload-too-large", f"The request body must not exceed {limit} bytes.")


def unsupported_media_type(expected: str) -> Problem:
    return Problem("unsupported-media-type", f"The request body must be {expected}.")


def bearer_challenge(error: str | None = None) -> str:
    """The ``WWW-Authenticate`` value of a 401 (RFC 6750 section 3)."""
    return 'Bearer realm="upgestao"' + (f', error="{error}"' if error else "")


def unauthenticated(detail: str = "A valid bearer token is required.", error: str | None = None) -> Problem:
    return Problem("unauthenticated", detail, headers={"WWW-Authenticate": bearer_challenge(error)})


def forbidden(detail: str = "You are not allowed to do this.", **extensions: Any) -> Problem:
    return Problem("forbidden", detail, **extensions)


def missing_permission(permission: str) -> Problem:
    """403 naming the permission the principal lacks (``permission`` member)."""
    return Problem("forbidden", f"This needs the permission {permission}.", permission=permission)


def internal_error() -> Problem:
    return Problem("internal-error", "An unexpected error occurred. Quote the request id when reporting it.")


def service_unavailable(detail: str = "A service needed to answer is unavailable; try again later.") -> Problem:
    return Problem("service-unavailable", detail, headers={"Retry-After": "5"})


def rate_limited(headers: Mapping[str, str]) -> Problem:
    """429: the principal's quota is spent (``headers``: the ``RateLimit-*`` fields and ``Retry-After``)."""
    return Problem("rate-limited", "Too many requests for your quota; retry after the seconds in Retry-After.",
                   headers=headers)


def idempotency_key_in_use() -> Problem:
    """409: a request with this Idempotency-Key is still being carried out (draft-ietf-httpapi-idempotency-key-
    header); its retry is answered from the first one's reply once that is done."""
    return Problem("idempotency-key-in-use", "A request with this Idempotency-Key is still being carried out; "
                   "retry it after the seconds in Retry-After.", headers={"Retry-After": "1"},
                   errors=[{"field": "Idempotency-Key", "message": "is in use by a request in flight"}])


def validation_failed(exc: ValidationError, location: str = "body") -> Problem:
    return Problem(
        "validation-error",
        f"The request {location} is invalid.",
        errors=field_errors(exc.messages),
    )


def field_errors(messages: Any, prefix: str = "") -> list[dict[str, str]]:
    """Flatten marshmallow's nested messages into ``[{"field": "a.b.0.c", "message": ...}]``.

    Schema-level errors (marshmallow's ``_schema``) are reported on the
    enclosing field, or as ``_schema`` at the root.
    """
    out: list[dict[str, str]] = []
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            if key == "_schema":
                path = prefix or "_schema"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            out.extend(field_errors(value, path))
    elif isinstance(messages, (list, tuple)):
        for item in messages:
            if isinstance(item, (Mapping, list, tuple)):
                out.extend(field_errors(item, prefix))
            else:
                out.append({"field": prefix or "_schema", "message": str(item)})
    else:
        out.append({"field": prefix or "_schema", "message": str(messages)})
    return out


# -- errors answered by the services ------------------------------------------------

# Members a service cannot set (the gateway owns them) or that would clash with Problem's own arguments.
_RESERVED_MEMBERS = frozenset({"type", "title", "status", "detail", "instance", "request_id", "slug", "headers"})
_SLUG = re.compile(r"^[a-z][a-z0-9-]{0,63}$")


def problem_from_service_error(error: ServiceError) -> Problem:
    """The problem document of a :class:`ServiceError` a service answered over RPC.

    ``extensions`` become members (``errors``, ``retry_after``, ...); an integer
    ``retry_after`` (seconds) also sets ``Retry-After``; a 401 carries the bearer
    challenge. A malformed slug or status is a bug of the service: answered 500.

    The kernel sends the extensions as one JSON document, so types survive
    nameko's serialisation; a ``retry_after`` given as a decimal string is
    accepted too.
    """
    slug, status = str(error.slug), error.status
    if not _SLUG.match(slug) or not 400 <= status <= 599:
        return internal_error()
    extensions = {
        key: value for key, value in error.extensions.items()
        if isinstance(key, str) and key not in _RESERVED_MEMBERS
    }
    headers: dict[str, str] = {}
    retry_after = _seconds(extensions.get("retry_after"))
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
        extensions["retry_after"] = retry_after
    if status == 401:
        headers["WWW-Authenticate"] = bearer_challenge("invalid_token" if slug == "invalid-token" else None)
    return Problem(slug, str(error.detail), status=status, headers=headers, **extensions)


def _seconds(value: Any) -> int | None:
    """A non-negative whole number of seconds (an int, or its decimal string); else None."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 9:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9:
        return value
    return None
