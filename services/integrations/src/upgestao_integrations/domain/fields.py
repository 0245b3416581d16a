"""What an integration may be given: the policy's shareable fields and the webhook types it may subscribe to.

The privacy policy (§4) lets UpGestão share e-mail, name, phone and conversations with an integrated tool,
and nothing else (R4.1). An integration's ``fields`` setting is a subset of :data:`SHAREABLE_FIELDS`;
the fields of :data:`NEVER_SHAREABLE` (and any other name) are refused with the name of the field, so the
registry answers 422 naming it.
"""

from __future__ import annotations

from collections.abc import Iterable

SHAREABLE_FIELDS: tuple[str, ...] = ("email", "name", "phone", "conversations")
NEVER_SHAREABLE: tuple[str, ...] = ("address", "birth_date", "gender", "photo", "job_title", "credentials")

# Identity's names of the shareable person fields (``conversations`` is messaging's: message bodies).
IDENTITY_FIELD_NAMES: dict[str, str] = {"email": "email", "name": "full_name", "phone": "phone"}
PERSON_FIELDS: tuple[str, ...] = ("email", "name", "phone")

WEBHOOK_TYPES: tuple[str, ...] = (
    "conversation.created",
    "conversation.status_changed",
    "conversation.assigned",
    "message.created",
    "message.edited",
    "message.deleted",
    "customer.created",
    "subject.updated",
    "subject.erased",
)
# Corrections and erasures follow the data whatever the subscription (R4.3, LGPD art. 18 §6).
ALWAYS_DELIVERED: tuple[str, ...] = ("subject.updated", "subject.erased")
ALL_EVENTS = "*"


class FieldRefused(ValueError):
    """A setting names something that may not be selected; ``field`` is the offending name (or ``events``)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _names(values: object, what: str) -> list[str]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise FieldRefused(what, f"must be a list of {what}")
    names = list(values)
    for name in names:
        if not isinstance(name, str):
            raise FieldRefused(what, f"every item of {what} must be a string")
    return names


def check_fields(fields: Iterable[str]) -> tuple[str, ...]:
    """The allowed fields, sorted and unique; raises :class:`FieldRefused` naming the first refused field.

    An empty selection is allowed: the integration then receives ids only.
    """
    names = _names(fields, "fields")
    for name in names:
        if name in NEVER_SHAREABLE:
            raise FieldRefused(name, "this field can never be shared with an integration (privacy policy §4)")
        if name not in SHAREABLE_FIELDS:
            raise FieldRefused(name, f"unknown field: the shareable fields are {', '.join(SHAREABLE_FIELDS)}")
    return tuple(sorted(set(names)))


def check_event_types(events: Iterable[str]) -> tuple[str, ...]:
    """The subscribed webhook types, sorted and unique, or ``("*",)`` for all; raises ``FieldRefused("events")``."""
    names = _names(events, "events")
    if not names:
        raise FieldRefused("events", "subscribe to at least one event type, or [\"*\"] for all")
    if ALL_EVENTS in names:
        if len(names) != 1:
            raise FieldRefused("events", "\"*\" subscribes to every type and must be alone")
        return (ALL_EVENTS,)
    for name in names:
        if name not in WEBHOOK_TYPES:
            raise FieldRefused("events", f"unknown event type {name[:64]!r}: the types are {', '.join(WEBHOOK_TYPES)}")
    return tuple(sorted(set(names)))


def subscribed(events: Iterable[str], webhook_type: str) -> bool:
    """Whether an integration with these ``events`` receives ``webhook_type`` (corrections and erasures always)."""
    if webhook_type in ALWAYS_DELIVERED:
        return True
    names = tuple(events)
    return ALL_EVENTS in names or webhook_type in names
