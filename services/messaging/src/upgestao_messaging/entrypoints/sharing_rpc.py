"""RPC methods through which the integrations service opens the conversations it shares (issue 15, mixed
into the service): never a private note, never a staff chat, each opening audited as a ``share``."""

from __future__ import annotations


class SharingRpc:
    """Mixed into :class:`~upgestao_messaging.service.MessagingService`."""
