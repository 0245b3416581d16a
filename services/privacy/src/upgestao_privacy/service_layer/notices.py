"""The notices privacy's e-mails need: ``privacy.notice(event_id, recipient_id=, cursor=)`` for the notifier.

The notifier receives one of privacy's notice events (ids only), then asks privacy for the notice: the kind,
its data (the template's keys, ``upgestao_notifier.domain.kinds``) and the recipients (id, address, name,
locale) — a page of them for a campaign, ``next`` the cursor of the next page. Each area registers the
builder of the event types it owns with :func:`register`; ``notice`` answers the notifier's broker user
only and audits every address it hands out (purpose ``notification``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# event type -> builder(uow, event_envelope_or_record, recipient_id, cursor, deps) -> notice dict
NoticeBuilder = Callable[..., dict[str, Any]]
BUILDERS: dict[str, NoticeBuilder] = {}


def register(event_type: str, builder: NoticeBuilder) -> None:
    """Declare who builds the notice of ``event_type`` (each area, at import)."""
    if event_type in BUILDERS and BUILDERS[event_type] is not builder:
        raise ValueError(f"two builders for {event_type}")
    BUILDERS[event_type] = builder
