"""RPC methods of identity's API keys (issue 15, mixed into the service): keys for integrated tools,
shown once, stored as hashes, scoped, expiring, revocable at once; the gateway exchanges one for an
access token."""

from __future__ import annotations

from upgestao_kernel.errors import field_error, validation_error
from upgestao_kernel.nameko_ext import rpc

from ..adapters.sql_repositories import with_sql_repositories
from ..service_layer import api_keys


class ApiKeysRpc:
    """Mixed into :class:`~upgestao_identity.service.IdentityService`."""

    @rpc(keep_reply=False)  # the reply holds the key, shown once: never stored
    def create_api_key(self, data: dict) -> dict:
        """A key for an integrated tool (``integrations.manage``): ``{id, key, name, scopes, expires_at, ...}``."""
        if not isinstance(data, dict):
            raise validation_error([field_error("_schema", "must be an object")])
        with with_sql_repositories(self.db.unit_of_work()) as uow:
            return api_keys.create(uow, dict(data), now=self.identity.now())

    @rpc
    def api_keys(self, limit: int = 50, cursor: str | None = None) -> dict:
        """A page of the keys (never a key, only what it may do and when it was used)."""
        with with_sql_repositories(self.db.unit_of_work()) as uow:
            return api_keys.list_page(uow, limit, cursor)

    @rpc
    def api_key(self, key_id: str) -> dict:
        with with_sql_repositories(self.db.unit_of_work()) as uow:
            return api_keys.get(uow, key_id)

    @rpc
    def revoke_api_key(self, key_id: str) -> dict:
        """Revoked at once: ``{"id", "revoked"}`` (``revoked`` false: it was revoked already)."""
        with with_sql_repositories(self.db.unit_of_work()) as uow:
            return api_keys.revoke(uow, key_id)

    @rpc(sensitive_arguments=("key",), keep_reply=False)  # a reply of tokens is never stored
    def exchange_api_key(self, key: str) -> dict:
        """The gateway's broker user only: an access token for the key's principal (401 for any key that
        cannot be used, whatever the reason)."""
        with with_sql_repositories(self.db.unit_of_work()) as uow:
            return api_keys.exchange(uow, self.identity.issuer, key, now=self.identity.now())
