"""The gateway's routes for privacy's access bundles' downloads and erasure progress."""

from __future__ import annotations


class PrivacyExportRoutes:
    """Mixed into the gateway service (which provides ``self.rpc``)."""
