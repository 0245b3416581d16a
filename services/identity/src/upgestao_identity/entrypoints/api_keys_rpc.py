"""RPC methods of identity's API keys (issue 15, mixed into the service): keys for integrated tools,
shown once, stored as hashes, scoped, expiring, revocable at once; the gateway exchanges one for an
access token."""

from __future__ import annotations


class ApiKeysRpc:
    """Mixed into :class:`~upgestao_identity.service.IdentityService`."""
