"""RPC methods of privacy's incidents area (mixed into the service):
security incidents and their notice campaigns, the platform's data map.

Thin: each builds the use cases on the worker's database (a unit of work with the incidents' repository),
the role table, the clock and the proxies, then calls one. Who may call what is decided in the use cases:
the incident methods need ``privacy.incidents`` (the DPO), ``platform_data_map`` needs ``datamap.read``;
``data_map`` (privacy's own declaration, no personal value) answers anyone, as identity's does. The breach
notice is built for the notifier through the notice registry (``service_layer/notices.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from upgestao_kernel.nameko_ext import rpc

from ..adapters.incident_repository import sql_incident_repositories
from ..domain.datamap import own_items
from ..service_layer import datamap
from ..service_layer.incidents import IncidentCases, IncidentDeps


def _now() -> datetime:
    return datetime.now(UTC)


class IncidentsRpc:
    """Mixed into :class:`~upgestao_privacy.service.PrivacyService`
    (which provides ``db``, ``roles`` and the identity, messaging and notifier proxies)."""

    db: Any
    roles: Any
    identity: Any
    messaging: Any
    notifier: Any

    def _incidents(self) -> IncidentCases:
        return IncidentCases(IncidentDeps(
            unit_of_work=lambda: self.db.unit_of_work().with_repositories(sql_incident_repositories),
            permissions_of=self.roles.permissions_of, now=_now, identity=self.identity, messaging=self.messaging,
            notifier=self.notifier))

    @rpc
    def incident_record(self, incident: dict) -> dict:
        """Record a security incident (a draft) with every LGPD art. 48 §1 item."""
        return self._incidents().record(incident)

    @rpc
    def incidents_list(self, limit: int = 50, cursor: str | None = None) -> dict:
        return self._incidents().list(limit, cursor)

    @rpc
    def incident_get(self, incident_id: str, cursor: str | None = None, limit: int = 200) -> dict:
        """One incident with its texts, its deadline and its notice's progress (a page of recipients)."""
        return self._incidents().get(incident_id, cursor, limit)

    @rpc
    def incident_confirm(self, incident_id: str, delay_reasons: str | None = None) -> dict:
        """Confirm: resolve the affected people and request one breach notice to each (once only)."""
        return self._incidents().confirm(incident_id, delay_reasons)

    @rpc
    def data_map(self) -> dict:
        """Privacy's own personal fields (the item shape of identity's map)."""
        return {"service": "privacy", "items": own_items()}

    @rpc
    def platform_data_map(self) -> dict:
        """Every personal field of every service (identity, messaging, privacy), or which did not answer."""
        return datamap.platform_data_map(self.db.unit_of_work, self.roles.permissions_of,
                                         {"identity": self.identity, "messaging": self.messaging})
