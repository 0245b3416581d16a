"""The gateway's routes for identity's API keys (issue 15): create (shown once), list, revoke. Every route
needs ``integrations.manage``."""

from __future__ import annotations


class ApiKeyRoutes:
    """Mixed into :class:`~upgestao_gateway.service.GatewayService`."""
