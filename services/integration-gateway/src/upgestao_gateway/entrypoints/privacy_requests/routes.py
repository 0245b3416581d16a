"""The gateway's routes for privacy's data-subject requests and the privacy contact channel."""

from __future__ import annotations


class PrivacyRequestRoutes:
    """Mixed into the gateway service (which provides ``self.rpc``)."""
