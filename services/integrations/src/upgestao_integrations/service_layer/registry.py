"""The integrations registry: register, list, read, change, rotate the secret (permission
``integrations.manage``).

The signing secret (``whsec_`` + base64 of 32 random bytes) is shown once, in the answer to ``register`` and
``rotate_secret``; it is sealed (AES-GCM) into ``integration_secrets`` in the same transaction as the event.
After a rotation the previous secret keeps signing for ``INTEGRATIONS_SECRET_OVERLAP_S`` (24 h): both
signatures are sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from upgestao_kernel.errors import invalid_field, not_found

from ..adapters.secret_box import SecretBox
from ..domain.fields import FieldRefused, check_event_types, check_fields
from ..domain.integrations import CHANGEABLE, STATUSES, Integration
from ..domain.network import check_url
from ..domain.signing import new_secret
from .access import PermissionsOf, check_limit, decode_cursor, encode_cursor, iso, managed, text_id

MAX_NAME = 200
MAX_URL = 2000


def view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "url": row["url"], "events": list(row["events"]),
            "fields": list(row["fields"]), "privacy_policy_url": row["privacy_policy_url"], "status": row["status"],
            "disabled_reason": row["disabled_reason"], "created_at": iso(row["created_at"]),
            "updated_at": iso(row["updated_at"]), "secret_rotated_at": iso(row["secret_rotated_at"]),
            "previous_secret_valid_until": iso(row["previous_secret_valid_until"])}


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > MAX_NAME:
        raise invalid_field("name", f"a name of 1 to {MAX_NAME} characters")
    return value.strip()


def _url(field: str, value: Any, production: bool) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_URL:
        raise invalid_field(field, "an http(s) URL")
    try:
        check_url(value, production)
    except ValueError as exc:
        raise invalid_field(field, str(exc)) from None
    return value


def _policy_url(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")) or len(value) > MAX_URL:
        raise invalid_field("privacy_policy_url", "the third party's privacy policy: an http(s) URL (required)")
    return value


def _listed(field: str, value: Any, check: Callable[[Any], tuple[str, ...]]) -> list[str]:
    if not isinstance(value, list | tuple):
        raise invalid_field(field, "a list of names")
    try:
        return list(check(value))
    except FieldRefused as exc:
        raise invalid_field(exc.field, exc.reason) from None


class Registry:
    def __init__(self, unit_of_work: Callable[[], Any], permissions_of: PermissionsOf, box: SecretBox, *,
                 production: bool, overlap_s: float, now: Callable[[], datetime]) -> None:
        self._unit_of_work = unit_of_work
        self._permissions_of = permissions_of
        self._box = box
        self._production = production
        self._overlap = timedelta(seconds=overlap_s)
        self._now = now

    def _managed(self, action: str, resource_id: str | None):
        return managed(self._unit_of_work, self._permissions_of, action, resource_id)

    def register(self, name: Any, url: Any, events: Any, fields: Any, privacy_policy_url: Any) -> dict:
        clean = {"name": _name(name), "url": _url("url", url, self._production),
                 "events": _listed("events", events, check_event_types),
                 "fields": _listed("fields", fields, check_fields),
                 "privacy_policy_url": _policy_url(privacy_policy_url)}
        secret, secret_id = new_secret(), str(uuid.uuid4())
        integration = Integration.register(secret_id=secret_id, **clean)
        with self._managed("create", integration.id) as uow:
            uow.save(integration)
            uow.secrets.add(integration.id, secret_id, self._box.seal(integration.id, secret_id, secret), self._now())
            row = uow.integrations.get(integration.id)
        return {**view(row), "secret": secret}

    def integrations(self, limit: Any = 50, cursor: Any = None) -> dict:
        check_limit(limit)
        after = decode_cursor(cursor)
        with self._managed("list", None) as uow:
            rows = uow.integrations.page(limit + 1, after)
        more = len(rows) > limit
        rows = rows[:limit]
        return {"items": [view(r) for r in rows],
                "next_cursor": encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None}

    def integration(self, integration_id: Any) -> dict:
        text_id("integration", integration_id, "int_")
        with self._managed("read", integration_id) as uow:
            row = uow.integrations.get(integration_id)
        if row is None:
            raise not_found("integration")
        return view(row)

    def update(self, integration_id: Any, changes: Any) -> dict:
        text_id("integration", integration_id, "int_")
        if not isinstance(changes, Mapping) or not changes:
            raise invalid_field("changes", f"an object with some of {', '.join(CHANGEABLE)}")
        unknown = sorted(set(changes) - set(CHANGEABLE))
        if unknown:
            raise invalid_field(str(unknown[0])[:64], "cannot be changed")
        clean: dict[str, Any] = {}
        for key, value in changes.items():
            if key == "name":
                clean[key] = _name(value)
            elif key == "url":
                clean[key] = _url("url", value, self._production)
            elif key == "events":
                clean[key] = _listed("events", value, check_event_types)
            elif key == "fields":
                clean[key] = _listed("fields", value, check_fields)
            elif key == "privacy_policy_url":
                clean[key] = _policy_url(value)
            elif key == "status":
                if value not in STATUSES:
                    raise invalid_field("status", f"one of {', '.join(STATUSES)}")
                clean[key] = value
        with self._managed("update", integration_id) as uow:
            integration = uow.load(Integration, integration_id)
            if integration is None:
                raise not_found("integration")
            if integration.change(clean):
                uow.save(integration)
            row = uow.integrations.get(integration_id)
        return view(row)

    def rotate_secret(self, integration_id: Any) -> dict:
        text_id("integration", integration_id, "int_")
        secret, secret_id = new_secret(), str(uuid.uuid4())
        now = self._now()
        until = now + self._overlap
        with self._managed("update", integration_id) as uow:
            integration = uow.load(Integration, integration_id)
            if integration is None:
                raise not_found("integration")
            uow.secrets.retire_current(integration_id, until)
            uow.secrets.add(integration_id, secret_id, self._box.seal(integration_id, secret_id, secret), now)
            integration.rotate(secret_id, until.isoformat())
            uow.save(integration)
        return {"id": integration_id, "secret": secret, "previous_valid_until": until.isoformat()}
