"""The gateway's routes for the integrations service (issue 15): the webhook endpoints' registry, their
messages and attempts, resend and recover. Every route needs ``integrations.manage``."""

from __future__ import annotations


class IntegrationRoutes:
    """Mixed into :class:`~upgestao_gateway.service.GatewayService`."""
