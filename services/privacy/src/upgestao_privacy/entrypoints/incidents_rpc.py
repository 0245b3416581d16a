"""RPC methods of privacy's incidents area (mixed into the service):
security incidents and their notice campaigns, the platform's data map.
"""

from __future__ import annotations


class IncidentsRpc:
    """Mixed into :class:`~upgestao_privacy.service.PrivacyService`
    (which provides ``db``, ``roles`` and the identity, messaging and notifier proxies)."""
