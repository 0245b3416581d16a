"""The notices privacy's e-mails need: ``privacy.notice(event_id, recipient_id=, cursor=)`` for the notifier.

The notifier receives one of privacy's notice events (ids only), then asks privacy for the notice: the kind,
its data (the template's keys, ``upgestao_notifier.domain.kinds``) and the recipients (id, address, name,
locale) — a page of them for a campaign, ``next`` the cursor of the next page. Each area registers the
builder of the event types it owns with :func:`register`; ``notice`` answers the notifier's broker user
only and audits every address it hands out (purpose ``notification``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from upgestao_kernel.errors import ServiceError, not_found

# event type -> builder(uow, event_envelope_or_record, recipient_id, cursor, deps) -> notice dict
NoticeBuilder = Callable[..., dict[str, Any]]
BUILDERS: dict[str, NoticeBuilder] = {}


def register(event_type: str, builder: NoticeBuilder) -> None:
    """Declare who builds the notice of ``event_type`` (each area, at import)."""
    if event_type in BUILDERS and BUILDERS[event_type] is not builder:
        raise ValueError(f"two builders for {event_type}")
    BUILDERS[event_type] = builder


NOTIFIER = "notifier"  # the only caller of ``notice``
RESOURCE = "notice"
PURPOSE = "notification"


@dataclass(frozen=True)
class NoticeDeps:
    """What a builder may use besides the unit of work: the clock, and identity (``contacts``)."""

    now: datetime
    identity: Any = None


def fetch(uow: Any, notice_id: Any, recipient_id: Any = None, cursor: Any = None,
          deps: NoticeDeps | None = None) -> dict[str, Any]:
    """The notice announced by privacy's event ``notice_id``, built by the builder registered for the event's
    type: for the notifier's broker user only (anyone else: 403, audited as denied); 404 when there is no
    such event, no builder for its type, or nothing (left) to send."""
    if uow.context.caller_service != NOTIFIER:
        uow.deny(action="read", resource_type=RESOURCE, resource_id=str(notice_id)[:64], subject_id=None,
                 fields=(), purpose=PURPOSE)
        raise ServiceError("forbidden", "Only the notifier may fetch a notice.", 403)
    if not isinstance(notice_id, str) or not notice_id or len(notice_id) > 36:
        raise not_found("notice")
    from upgestao_kernel.eventstore import _envelope
    from upgestao_kernel.schema import events

    row = uow.conn.execute(sa.select(events).where(events.c.event_id == notice_id)).first()
    builder = BUILDERS.get(row.type) if row is not None else None
    if builder is None:
        raise not_found("notice")
    return builder(uow, _envelope(row), recipient_id, cursor, deps or NoticeDeps(now=datetime.now(UTC)))
