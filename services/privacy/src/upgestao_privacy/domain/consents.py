"""Cookie consent per purpose (R7.1): ``essential`` always on, ``analytics`` and ``personalisation`` off
until chosen, each choice recorded against the policy version the person was shown.

A *holder* is a signed-in user (by their id) or an anonymous visitor (by a random visitor id the client
keeps: a version-4 UUID the server issues when the client has none). One stream per holder,
``consent-<holder id>`` where the holder id is derived (UUID 5) from ``user:<id>`` or ``visitor:<id>``, so a
visitor id never appears in a stream name nor in anything published. Every change is kept: the stream
is the full history; withdrawal is a change like any other (and a ``consent_revocation`` request withdraws
every optional purpose at once).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from upgestao_kernel.events import Aggregate

from .events import PrivacyEvent

ESSENTIAL = "essential"
OPTIONAL_PURPOSES = ("analytics", "personalisation")
PURPOSES = (ESSENTIAL, *OPTIONAL_PURPOSES)
USER, VISITOR = "user", "visitor"
CHOICE, REVOCATION_REQUEST = "choice", "revocation_request"
VISITOR_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
_NAMESPACE = uuid.UUID("6f1d3c52-8f0e-4c55-9a43-2b7c1e0d9a11")


class InvalidConsent(Exception):
    """Bad input: 422 naming ``field``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ConsentsChanged(PrivacyEvent, subject="holder_id",
                      publishes=("holder_id", "holder_kind", "user_id", "purposes", "policy_version", "source")):
    """A holder's consents changed: ``purposes`` is the whole choice now (``essential`` always true),
    ``changed`` the purposes that differ from before; ``source`` is ``choice`` (the holder's PUT) or
    ``revocation_request`` (a data-subject request withdrew every optional consent; ``request_id``)."""

    holder_kind: str
    user_id: str | None  # the signed-in user; None for a visitor (whose id is never published)
    purposes: dict[str, bool]
    changed: list[str]
    policy_version: str
    source: str
    request_id: str | None = None


def holder_id(kind: str, id: str) -> str:
    """The stream's id of a user's or a visitor's consents."""
    if kind not in (USER, VISITOR):
        raise ValueError(kind)
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{id}"))


def clean_visitor_id(value: object) -> str:
    if not isinstance(value, str) or not VISITOR_ID.match(value):
        raise InvalidConsent("visitor_id", "must be the visitor id this API issued (a lowercase version-4 UUID)")
    return value


def new_visitor_id() -> str:
    return str(uuid.uuid4())


def clean_purposes(purposes: object) -> dict[str, bool]:
    """The optional purposes chosen (a subset of them; ``essential`` may be given, only as true)."""
    if not isinstance(purposes, Mapping) or not purposes:
        raise InvalidConsent("purposes", "must be an object naming at least one purpose")
    chosen: dict[str, bool] = {}
    for name, value in purposes.items():
        if name not in PURPOSES:
            raise InvalidConsent(f"purposes.{name}", f"is not a purpose (one of {', '.join(PURPOSES)})")
        if not isinstance(value, bool):
            raise InvalidConsent(f"purposes.{name}", "must be true or false")
        if name == ESSENTIAL:
            if not value:
                raise InvalidConsent("purposes.essential", "is always on: it cannot be withdrawn")
            continue
        chosen[name] = value
    return chosen


class ConsentHolder(Aggregate):
    stream_type = "consent"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.purposes: dict[str, bool] = {ESSENTIAL: True, **dict.fromkeys(OPTIONAL_PURPOSES, False)}
        self.policy_version: str | None = None

    def choose(self, *, kind: str, user_id: str | None, chosen: Mapping[str, bool], policy_version: str,
               source: str = CHOICE, request_id: str | None = None) -> bool:
        """Record the choice (the purposes not named keep their value); ``False`` when nothing changes."""
        purposes = {**self.purposes, **{k: bool(v) for k, v in chosen.items() if k in OPTIONAL_PURPOSES},
                    ESSENTIAL: True}
        changed = sorted(k for k in OPTIONAL_PURPOSES if purposes[k] != self.purposes[k])
        if not changed and self.policy_version is not None and policy_version == self.policy_version:
            return False
        self.trigger(ConsentsChanged(holder_kind=kind, user_id=user_id, purposes=purposes, changed=changed,
                                     policy_version=policy_version, source=source, request_id=request_id))
        return True

    def withdraw_all(self, *, kind: str, user_id: str | None, policy_version: str, request_id: str) -> bool:
        """Every optional purpose off (a ``consent_revocation`` request); ``False`` when all were off already."""
        if not any(self.purposes[k] for k in OPTIONAL_PURPOSES):
            return False
        return self.choose(kind=kind, user_id=user_id, chosen=dict.fromkeys(OPTIONAL_PURPOSES, False),
                           policy_version=self.policy_version or policy_version, source=REVOCATION_REQUEST,
                           request_id=request_id)

    def when_consents_changed(self, holder_kind, user_id, purposes, changed, policy_version, source,
                              request_id=None) -> None:
        self.purposes = dict(purposes)
        self.policy_version = policy_version
