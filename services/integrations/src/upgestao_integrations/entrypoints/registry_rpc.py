"""The registry's RPCs (permission ``integrations.manage``): the gateway's ``/v1/integrations`` routes."""

from __future__ import annotations

from upgestao_kernel.nameko_ext import rpc

from ..service_layer.registry import Registry
from .dispatcher import utcnow


class RegistryRpc:
    def _registry(self) -> Registry:
        s = self.runtime.settings
        return Registry(self._uow, self.roles.permissions_of, self.runtime.box, production=s.production,
                        overlap_s=s.secret_overlap_s, now=utcnow)

    @rpc(keep_reply=False)  # the reply holds the signing secret, shown once: never stored with a keyed request
    def register(self, name: str, url: str, events: list, fields: list, privacy_policy_url: str) -> dict:
        """A new integration; its signing secret is in this answer only."""
        return self._registry().register(name, url, events, fields, privacy_policy_url)

    @rpc
    def integrations(self, limit: int = 50, cursor: str | None = None) -> dict:
        return self._registry().integrations(limit, cursor)

    @rpc
    def integration(self, integration_id: str) -> dict:
        return self._registry().integration(integration_id)

    @rpc
    def update_integration(self, integration_id: str, changes: dict) -> dict:
        return self._registry().update(integration_id, changes)

    @rpc(keep_reply=False)  # the reply holds the new signing secret: never stored
    def rotate_secret(self, integration_id: str) -> dict:
        """A new secret (in this answer only); the previous one signs too for 24 h."""
        return self._registry().rotate_secret(integration_id)
