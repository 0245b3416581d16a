"""The gateway's routes for privacy's security incidents and the data map."""

from __future__ import annotations


class PrivacyIncidentRoutes:
    """Mixed into the gateway service (which provides ``self.rpc``)."""
