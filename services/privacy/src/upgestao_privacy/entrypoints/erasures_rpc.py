"""RPC methods of privacy's erasures area (mixed into the service):
erasure orchestration across services and access/portability bundles.
"""

from __future__ import annotations


class ErasureRpc:
    """Mixed into :class:`~upgestao_privacy.service.PrivacyService`
    (which provides ``db``, ``roles`` and the identity, messaging and notifier proxies)."""
