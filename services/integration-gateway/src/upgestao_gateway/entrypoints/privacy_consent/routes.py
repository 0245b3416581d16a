"""The gateway's routes for privacy's corrections, policy versions and cookie consents."""

from __future__ import annotations


class PrivacyConsentRoutes:
    """Mixed into the gateway service (which provides ``self.rpc``)."""
