"""An integration: a tool a customer integrates, the webhooks it subscribes to and the fields it may receive.

States: ``enabled`` and ``disabled`` (with the reason: ``manual``, ``gone`` for a 410, ``failing`` for 5 days
of failures). Every change is an :class:`IntegrationChanged` with the whole published view, so privacy's
third-party read model follows. The signing secret is never in an event: the service seals it into its own
table in the same transaction as :class:`IntegrationSecretRotated` (or the registration).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from upgestao_kernel.events import Aggregate

from .events import (
    IntegrationChanged,
    IntegrationDisabled,
    IntegrationEnabled,
    IntegrationRegistered,
    IntegrationSecretRotated,
)

ENABLED = "enabled"
DISABLED = "disabled"
STATUSES = (ENABLED, DISABLED)
REASONS = ("manual", "gone", "failing")
CHANGEABLE = ("name", "url", "events", "fields", "privacy_policy_url", "status")


def new_integration_id() -> str:
    return "int_" + uuid.uuid4().hex[:26]


def recipient_of(integration_id: str) -> str:
    """The integration as a recipient in the audit log and in privacy's erasures."""
    return f"integration:{integration_id}"


class IntegrationRefused(Exception):
    """The change is not possible from the integration's state (``conflict``)."""


class Integration(Aggregate):
    stream_type = "integration"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.name = ""
        self.url = ""
        self.events: list[str] = []
        self.fields: list[str] = []
        self.privacy_policy_url = ""
        self.status = ENABLED
        self.disabled_reason: str | None = None
        self.secret_id: str | None = None

    @classmethod
    def register(cls, *, name: str, url: str, events: list[str], fields: list[str], privacy_policy_url: str,
                 secret_id: str, integration_id: str | None = None) -> Integration:
        """Arguments already validated (names, URL, events, fields: :mod:`.fields`, :mod:`.network`)."""
        integration = cls(integration_id or new_integration_id())
        integration.trigger(IntegrationRegistered(name=name, url=url, events=list(events), fields=list(fields),
                                                  privacy_policy_url=privacy_policy_url, status=ENABLED))
        integration.trigger(IntegrationSecretRotated(secret_id=secret_id, previous_secret_id=None,
                                                     previous_valid_until=None))
        return integration

    def _changed(self) -> None:
        self.trigger(IntegrationChanged(name=self.name, url=self.url, events=list(self.events),
                                        fields=list(self.fields), privacy_policy_url=self.privacy_policy_url,
                                        status=self.status, disabled_reason=self.disabled_reason))

    def change(self, changes: Mapping[str, Any]) -> bool:
        """Apply validated ``changes`` (a subset of name, url, events, fields, privacy_policy_url, status);
        False when nothing changed."""
        status = changes.get("status")
        settings = {k: v for k, v in changes.items() if k != "status"}
        moved = {k: v for k, v in settings.items() if getattr(self, k) != v}
        changed = False
        if moved:
            for k, v in moved.items():
                setattr(self, k, list(v) if isinstance(v, list | tuple) else v)
            changed = True
        if status == DISABLED and self.status != DISABLED:
            self.disable("manual", announce=False)
            changed = True
        elif status == ENABLED and self.status != ENABLED:
            self.trigger(IntegrationEnabled())
            changed = True
        if changed:
            self._changed()
        return changed

    def disable(self, reason: str, *, announce: bool = True) -> bool:
        """False when already disabled (a second 410 of the same batch)."""
        if reason not in REASONS:
            raise ValueError(reason)
        if self.status == DISABLED:
            return False
        self.trigger(IntegrationDisabled(reason=reason))
        if announce:
            self._changed()
        return True

    def rotate(self, secret_id: str, previous_valid_until: str) -> None:
        self.trigger(IntegrationSecretRotated(secret_id=secret_id, previous_secret_id=self.secret_id,
                                              previous_valid_until=previous_valid_until))

    # -- state from events

    def _settings(self, name, url, events, fields, privacy_policy_url, status) -> None:
        self.name, self.url, self.events, self.fields = name, url, list(events), list(fields)
        self.privacy_policy_url, self.status = privacy_policy_url, status

    def when_integration_registered(self, name, url, events, fields, privacy_policy_url, status) -> None:
        self._settings(name, url, events, fields, privacy_policy_url, status)

    def when_integration_changed(self, name, url, events, fields, privacy_policy_url, status,
                                 disabled_reason=None) -> None:
        self._settings(name, url, events, fields, privacy_policy_url, status)
        self.disabled_reason = disabled_reason

    def when_integration_secret_rotated(self, secret_id, previous_secret_id, previous_valid_until) -> None:
        self.secret_id = secret_id

    def when_integration_disabled(self, reason) -> None:
        self.status, self.disabled_reason = DISABLED, reason

    def when_integration_enabled(self) -> None:
        self.status, self.disabled_reason = ENABLED, None
