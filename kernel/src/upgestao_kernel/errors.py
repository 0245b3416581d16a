"""Errors a service answers to its callers: precise, safe to show, no stack trace.

A :class:`ServiceError` crosses the RPC boundary as itself (the kernel's
``rpc`` entrypoint sends every subclass as the base class, which nameko
rebuilds on the caller's side), so the gateway turns it into an RFC 9457
problem document: ``slug`` names the problem type, ``status`` is its HTTP
status, ``extensions`` become extra members (``errors`` for field failures,
``retry_after`` for throttling, ...).

Pure Python: domain code raises these without knowing nameko.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any


class ServiceError(Exception):
    def __init__(
        self, slug: str, detail: str, status: int | str = 400, extensions: Mapping[str, Any] | str | None = None
    ):
        if isinstance(extensions, str):  # as it crossed the wire
            extensions = json.loads(extensions)
        self.slug = slug
        self.detail = detail
        self.status = int(status)
        self.extensions = dict(extensions or {})
        # nameko turns every non-string scalar of the args into its repr on the way:
        # the args are strings only, the extensions one JSON document.
        super().__init__(slug, detail, str(self.status), json.dumps(self.extensions, ensure_ascii=False))

    def __str__(self) -> str:
        return f"{self.status} {self.slug}: {self.detail}"

    def as_base(self) -> ServiceError:
        """The same error as a plain :class:`ServiceError` (what travels over RPC)."""
        return ServiceError(self.slug, self.detail, self.status, self.extensions)


def field_error(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


def validation_error(errors: Iterable[Mapping[str, str]], detail: str = "The request body is invalid.") -> ServiceError:
    """422 naming each failing field: ``[{"field": "birth_date", "message": ...}]``."""
    return ServiceError("validation-error", detail, 422, {"errors": [dict(e) for e in errors]})


def invalid_field(field: str, message: str) -> ServiceError:
    return validation_error([field_error(field, message)])


def not_found(what: str) -> ServiceError:
    return ServiceError("not-found", f"No such {what}.", 404)


def forbidden(detail: str = "You are not allowed to do this.", **extensions: Any) -> ServiceError:
    return ServiceError("forbidden", detail, 403, extensions)


def conflict(detail: str, **extensions: Any) -> ServiceError:
    return ServiceError("conflict", detail, 409, extensions)
