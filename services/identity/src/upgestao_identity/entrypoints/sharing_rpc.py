"""RPC methods through which the integrations service opens what it shares (issue 15, mixed into the
service): a customer's shareable fields (R4.1), each opening audited as a ``share`` with the integration as
recipient (R4.2)."""

from __future__ import annotations


class SharingRpc:
    """Mixed into :class:`~upgestao_identity.service.IdentityService`."""
