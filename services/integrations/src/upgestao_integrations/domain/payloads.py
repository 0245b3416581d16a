"""The body of a webhook: ``{"type", "timestamp", "data"}`` carrying only what the integration may receive.

Filtering is by allow-list, never by deny-list: each webhook type names the keys its ``data`` can carry and
what kind of value each holds; anything else in the event's data is dropped, whatever its name. Ids
(customer, conversation, message, assignee, team, subject) are not personal fields and always go; the
person's ``email``/``name``/``phone`` (under ``customer`` or, for ``subject.updated``, under ``changed``) go
only when the integration holds that field; a message ``body`` only with ``conversations``. Values must have
the kind their key expects (a dict where a string belongs is dropped), so nothing can ride along nested.

The JSON is compact and canonical (sorted keys, UTF-8) and never longer than :data:`MAX_PAYLOAD_BYTES`:
every string but the body is clipped to :data:`MAX_VALUE_BYTES` of JSON, and a body that does not fit is cut
(at a character boundary) and ``"body_truncated": true`` added.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from .fields import PERSON_FIELDS, SHAREABLE_FIELDS, WEBHOOK_TYPES

MAX_PAYLOAD_BYTES = 20_000
MAX_VALUE_BYTES = 512  # the JSON form of any one string but the body (ids, statuses, e-mail, name, phone)

_ID = "id"
_TEXT = "text"
_TIME = "time"
_COUNT = "count"
_BODY = "body"
_CUSTOMER = "customer"
_CHANGED = "changed"

_SCHEMAS: dict[str, dict[str, str]] = {
    "conversation.created": {"conversation_id": _ID, "customer_id": _ID, "channel": _TEXT, "team_id": _ID,
                             "assignee_id": _ID, "customer": _CUSTOMER},
    "conversation.status_changed": {"conversation_id": _ID, "customer_id": _ID, "status": _TEXT,
                                    "previous": _TEXT, "snoozed_until": _TIME},
    "conversation.assigned": {"conversation_id": _ID, "customer_id": _ID, "assignee_id": _ID, "team_id": _ID},
    "message.created": {"message_id": _ID, "conversation_id": _ID, "customer_id": _ID, "direction": _TEXT,
                        "created_at": _TIME, "attachment_count": _COUNT, "body": _BODY, "customer": _CUSTOMER},
    "message.edited": {"message_id": _ID, "conversation_id": _ID, "customer_id": _ID, "edited_at": _TIME,
                       "body": _BODY},
    "message.deleted": {"message_id": _ID, "conversation_id": _ID},
    "customer.created": {"customer_id": _ID, "customer": _CUSTOMER},
    "subject.updated": {"subject_id": _ID, "changed": _CHANGED},
    "subject.erased": {"subject_id": _ID, "mode": _TEXT},
}
assert tuple(_SCHEMAS) == WEBHOOK_TYPES


class PayloadTooLarge(ValueError):
    """The payload cannot be brought under the bound (it cannot happen with the schemas above)."""


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with ``Z`` and milliseconds; a naive datetime is refused (its zone is unknown)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a webhook timestamp must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_len(value: str) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8"))


def _scrub(text: str) -> str:
    """Lone surrogates (a JSON ``\\ud800`` decoded) cannot be UTF-8: each becomes U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _clip(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose JSON string form fits in ``max_bytes`` (cut between characters)."""
    text = _scrub(text)
    if _json_len(text) <= max_bytes:
        return text
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if _json_len(text[:middle]) <= max_bytes:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def _string(value: Any) -> str | None:
    return _clip(value, MAX_VALUE_BYTES) if isinstance(value, str) else None


def _time(value: Any) -> str | None:
    if isinstance(value, datetime):
        return iso_utc(value)
    return _string(value)


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53:
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and 0 <= value < 2**53:
        return int(value)
    return None


def _person(value: Any, allowed: frozenset[str], key_field: str | None) -> dict[str, Any] | None:
    """Of a person dict keep the id (when ``key_field``) and the allowed person fields, as strings or None."""
    if not isinstance(value, Mapping):
        return None
    out: dict[str, Any] = {}
    if key_field is not None and key_field in value:
        identifier = _string(value[key_field])
        if identifier is not None:
            out[key_field] = identifier
    for field in PERSON_FIELDS:
        if field in allowed and field in value:
            raw = value[field]
            if raw is None or isinstance(raw, str):
                out[field] = None if raw is None else _clip(raw, MAX_VALUE_BYTES)
    return out


_SCALARS: dict[str, Callable[[Any], Any]] = {_ID: _string, _TEXT: _string, _TIME: _time, _COUNT: _count}


def filter_data(webhook_type: str, data: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """``data`` reduced to what ``webhook_type`` carries and the integration's ``fields`` allow (body left whole)."""
    schema = _SCHEMAS.get(webhook_type)
    if schema is None:
        raise ValueError(f"unknown webhook type {webhook_type[:64]!r}")
    allowed = frozenset(f for f in fields if f in SHAREABLE_FIELDS)
    out: dict[str, Any] = {}
    for key, kind in schema.items():
        if key not in data:
            continue
        value = data[key]
        if kind == _BODY:
            if "conversations" in allowed and (value is None or isinstance(value, str)):
                out[key] = None if value is None else _scrub(value)
        elif kind == _CUSTOMER:
            person = _person(value, allowed, "id")
            if person is not None:
                out[key] = person
        elif kind == _CHANGED:
            person = _person(value, allowed, None)
            if person is not None:
                out[key] = person
        elif value is None:
            out[key] = None
        else:
            clean = _SCALARS[kind](value)
            if clean is not None:
                out[key] = clean
    return out


def _encode(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


def build_payload(webhook_type: str, occurred_at: datetime, data: Mapping[str, Any],
                  fields: Iterable[str]) -> bytes:
    """The JSON bytes of one webhook (``type``, ``timestamp`` ISO 8601 UTC, filtered ``data``), ≤ 20,000 bytes."""
    filtered = filter_data(webhook_type, data, fields)
    payload = {"type": webhook_type, "timestamp": iso_utc(occurred_at), "data": filtered}
    encoded = _encode(payload)
    if len(encoded) <= MAX_PAYLOAD_BYTES:
        return encoded
    body = filtered.get("body")
    if not isinstance(body, str):
        raise PayloadTooLarge(f"a {webhook_type} payload is over {MAX_PAYLOAD_BYTES} bytes")
    filtered["body"] = ""
    filtered["body_truncated"] = True
    room = MAX_PAYLOAD_BYTES - len(_encode(payload)) + _json_len("")
    if room < _json_len(""):
        raise PayloadTooLarge(f"a {webhook_type} payload is over {MAX_PAYLOAD_BYTES} bytes without its body")
    filtered["body"] = _clip(body, room)
    encoded = _encode(payload)
    if len(encoded) > MAX_PAYLOAD_BYTES:  # pragma: no cover - _clip measures the same encoding
        raise PayloadTooLarge(f"a {webhook_type} payload is over {MAX_PAYLOAD_BYTES} bytes")
    return encoded
