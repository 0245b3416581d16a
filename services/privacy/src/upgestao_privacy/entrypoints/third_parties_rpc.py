"""Privacy's view of the third parties data is shared with (issue 15, mixed into the service): the
integrations' names and privacy-policy URLs, from ``integrations.events``, for sharing reports (R9.1)."""

from __future__ import annotations


class ThirdPartiesRpc:
    """Mixed into :class:`~upgestao_privacy.service.PrivacyService`."""
