"""RPC methods of privacy's requests area (mixed into the service):
data-subject requests, the contact channel and the notices privacy's e-mails need.
"""

from __future__ import annotations


class RequestsRpc:
    """Mixed into :class:`~upgestao_privacy.service.PrivacyService`
    (which provides ``db``, ``roles`` and the identity, messaging and notifier proxies)."""
