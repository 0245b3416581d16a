"""What the gateway does with identity's access events, wherever they are read from.

``identity.session_revoked.v1`` (``data = {"session_id", "user_id", "reason"}``) puts the session in
the revocation list from the moment it was revoked (the envelope's ``occurred_at``), so a replayed
event is forgotten when its tokens must have expired; ``identity.role_permissions_changed.v1``
(``data = {"role"}``) makes the role map be fetched again. Other types are ignored.

The event types are the stream's own (:mod:`.stream` binds them).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from upgestao_kernel.logging import get_logger

from ..domain.revocations import RevocationList
from .stream import ROLE_PERMISSIONS_CHANGED, SESSION_REVOKED

log = get_logger(__name__)


class Invalidatable(Protocol):
    def invalidate(self) -> None: ...


def apply_access_event(body: Mapping[str, Any], revocations: RevocationList, permissions: Invalidatable) -> None:
    """Apply one event envelope (``{"type", "data", "occurred_at", "event_id", ...}``)."""
    event_type = body.get("type")
    data = body.get("data") if isinstance(body.get("data"), Mapping) else {}
    if event_type == SESSION_REVOKED:
        session_id = data.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            log.warning("access.event_invalid", type=event_type, event_id=body.get("event_id"))
            return
        if revocations.revoke(session_id, epoch(body.get("occurred_at"))):
            log.info("access.session_revoked", session_id=session_id, reason=data.get("reason"))
    elif event_type == ROLE_PERMISSIONS_CHANGED:
        log.info("access.role_permissions_changed", role=data.get("role"))
        permissions.invalidate()


def epoch(occurred_at: Any) -> float | None:
    """Epoch seconds of an envelope's ``occurred_at``; ``None`` (now) when absent or unreadable."""
    if not isinstance(occurred_at, str):
        return None
    try:
        moment = datetime.fromisoformat(occurred_at)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
