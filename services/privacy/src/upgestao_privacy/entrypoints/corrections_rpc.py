"""RPC methods of privacy's corrections area (mixed into the service):
correction requests, policy versions and acceptances, cookie consents.
"""

from __future__ import annotations


class ConsentRpc:
    """Mixed into :class:`~upgestao_privacy.service.PrivacyService`
    (which provides ``db``, ``roles`` and the identity, messaging and notifier proxies)."""
