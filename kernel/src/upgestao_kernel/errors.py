"""Errors: the domain's refusals, and the problems a service answers to its callers.

Two kinds, on two sides of the service's edge:

* :class:`DomainError` -- a rule of the domain refused what was asked, said in the domain's own
  terms (identity's ``UserIsDeactivated``). No status, no wire form: the domain does not know it is
  called over RPC, nor that the gateway speaks HTTP.
* :class:`ServiceError` -- the answer on the wire, precise and safe to show, no stack trace. The
  kernel's ``rpc`` entrypoint sends every subclass as the base class, which nameko rebuilds on the
  caller's side, so the gateway turns it into an RFC 9457 problem document: ``slug`` names the problem
  type, ``status`` the status the gateway answers with, ``extensions`` become extra members
  (``errors`` for field failures, ``retry_after`` for throttling, ...).

Between them, one :class:`Problems` table per service (plus the kernel's own rows) at the edge: the
``rpc`` entrypoint answers each domain error as the problem its row makes. Pure Python.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any


class DomainError(Exception):
    """A rule of the domain refused what was asked; the edge's :class:`Problems` table says how to answer.

    Subclasses carry what the answer needs (a name, the offending values) as attributes. One that no
    table maps reaches the caller as an unexpected error (a 500): an unmapped refusal is a bug.
    """


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


ProblemFactory = Callable[[Any], ServiceError]


def problem(slug: str, status: int, detail: str | Callable[[Any], str], **extensions: Any) -> ProblemFactory:
    """A row's answer: always ``slug`` and ``status``; ``detail`` fixed or made from the exception."""

    def answer(exc: Any) -> ServiceError:
        return ServiceError(slug, detail(exc) if callable(detail) else detail, status, extensions)

    return answer


class Problems:
    """Exception classes and the problem answered for each: the edge's one table.

    A class's row answers its subclasses too, unless they have their own (the lookup walks the MRO).
    Registering a class again replaces its row (a module imported again brings its table again).
    """

    def __init__(self, rows: Mapping[type[BaseException], ProblemFactory] | None = None) -> None:
        self._rows: dict[type[BaseException], ProblemFactory] = {}
        if rows:
            self.register(rows)

    def register(self, rows: Mapping[type[BaseException], ProblemFactory]) -> None:
        for cls, answer in rows.items():
            if issubclass(cls, ServiceError):
                raise TypeError(f"{cls.__name__} is already an answer; only refusals have rows")
            self._rows[cls] = answer

    def answer(self, exc: BaseException) -> ServiceError | None:
        """The problem for ``exc``, or ``None`` when no row covers it."""
        for cls in type(exc).__mro__:
            row = self._rows.get(cls)
            if row is not None:
                return row(exc)
        return None

    def __contains__(self, cls: object) -> bool:
        return cls in self._rows

    def __iter__(self):
        return iter(self._rows)
