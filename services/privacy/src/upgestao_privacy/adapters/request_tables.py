"""Tables of privacy's request area, on the audit log's metadata, and their SQL.

* ``privacy_requests`` — the read model of the ``request-<id>`` streams (:class:`RequestProjection`, applied
  in the append's transaction by the use cases, or by the unit of work once the service names it): type,
  state, subject, requester, channel, received and due dates; the lists and the overdue queue read it.
  The history and the sealed texts are read from the stream itself (one request at a time).
* ``privacy_request_notices`` — what the notifier fetches for a verification code (``privacy.notice``):
  the contact address and the code, sealed under the request's vault subject, kept until the code is
  used, dies or expires (identity's reset-token notice is the model). Its id is the announcing event's.
* ``privacy_contact_budgets`` — the contact channel's rate limits: filings per key (a client address,
  an address's blind index) in the current window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from upgestao_kernel.events import EventEnvelope
from upgestao_kernel.schema import UtcDateTime

from .tables import metadata

TS = UtcDateTime()
ID = sa.String(36)

privacy_requests = sa.Table(
    "privacy_requests", metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("subject_id", ID),
    sa.Column("subject_kind", sa.String(16)),
    sa.Column("requester_id", ID),
    sa.Column("received_at", TS, nullable=False),
    sa.Column("due_at", TS, nullable=False),
    sa.Column("closed_at", TS),
    sa.Column("updated_at", TS, nullable=False),
    sa.Index("ix_privacy_requests_state_due", "state", "due_at"),
    sa.Index("ix_privacy_requests_subject", "subject_id"),
    sa.Index("ix_privacy_requests_requester", "requester_id"),
)

privacy_request_notices = sa.Table(
    "privacy_request_notices", metadata,
    sa.Column("id", ID, primary_key=True),  # the id of the event announcing it
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("request_id", ID, nullable=False, index=True),
    sa.Column("vault_subject", ID, nullable=False),
    sa.Column("sealed", sa.JSON, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("expires_at", TS, nullable=False, index=True),
)

privacy_contact_budgets = sa.Table(
    "privacy_contact_budgets", metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("window_start", TS, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
)

TABLES = (privacy_requests, privacy_request_notices, privacy_contact_budgets)

# What the runtime role may do on this area's tables (merged into database_roles.RUNTIME_PRIVILEGES)
PRIVILEGES: Mapping[str, tuple[str, ...]] = {
    "privacy_requests": ("SELECT", "INSERT", "UPDATE"),  # the projection (a rebuild runs as the owner)
    "privacy_request_notices": ("SELECT", "INSERT", "DELETE"),  # a code's notice goes once used or expired
    "privacy_contact_budgets": ("SELECT", "INSERT", "UPDATE", "DELETE"),
}


# -- the projection ---------------------------------------------------------------------------------------

_PREFIX = "privacy.request_"


class RequestProjection:
    """``request-<id>`` events into ``privacy_requests`` (same transaction as the append)."""

    name = "privacy_requests"
    tables: Sequence[sa.Table] = (privacy_requests,)

    def apply(self, conn: Connection, event: EventEnvelope) -> None:
        if not event.type.startswith(_PREFIX) or not event.stream_id.startswith("request-"):
            return
        request_id = event.stream_id.split("-", 1)[1]
        data = event.data
        at = event.occurred_at
        if event.type == "privacy.request_filed.v1":
            conn.execute(privacy_requests.insert().values(
                id=request_id, type=data["request_type"], state=data["state"], channel=data["channel"],
                subject_id=data["subject_id"], subject_kind=None, requester_id=data["requester_id"],
                received_at=datetime.fromisoformat(data["received_at"]), due_at=datetime.fromisoformat(data["due_at"]),
                closed_at=None, updated_at=at))
            return
        values: dict[str, Any] = {"updated_at": at}
        if event.type == "privacy.request_verified.v1":
            values.update(state=data["state"], subject_id=data["subject_id"], subject_kind=data["subject_kind"])
        elif event.type == "privacy.request_due_date_extended.v1":
            values["due_at"] = datetime.fromisoformat(data["due_at"])
        elif "state" in data:
            values["state"] = data["state"]
            if data["state"] in ("completed", "denied", "canceled"):
                values["closed_at"] = datetime.fromisoformat(data["at"])
        else:
            return
        conn.execute(privacy_requests.update().where(privacy_requests.c.id == request_id).values(**values))


projection = RequestProjection()


# -- repositories ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestRow:
    id: str
    type: str
    state: str
    channel: str
    subject_id: str | None
    subject_kind: str | None
    requester_id: str | None
    received_at: datetime
    due_at: datetime
    closed_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class NoticeRow:
    id: str
    kind: str
    request_id: str
    vault_subject: str
    sealed: dict[str, str | None]
    created_at: datetime
    expires_at: datetime


class SqlRequests:
    """The request area's tables on a unit of work's connection."""

    def __init__(self, uow: Any) -> None:
        self._uow = uow

    @property
    def conn(self) -> Connection:
        return self._uow.conn

    # -- the read model
    def project(self, envelopes: Sequence[EventEnvelope]) -> None:
        """Apply the request projection to events just appended, unless the unit of work applies it itself
        (the service's ``Database(projections=...)`` naming :data:`projection`: then ``rebuild`` covers it)."""
        if any(isinstance(p, RequestProjection) for p in getattr(self._uow, "projections", ())):
            return
        for envelope in envelopes:
            projection.apply(self.conn, envelope)

    def list(self, *, subject_id: str | None = None, states: Sequence[str] = (), type: str | None = None,
             limit: int = 50, after: tuple[datetime, str] | None = None, overdue_at: datetime | None = None,
             ) -> list[RequestRow]:
        """By due date (then id), earliest first; ``subject_id``: the person's own (as subject or requester);
        ``overdue_at``: open ones due at or before that instant; ``after``: the cursor (due_at, id)."""
        t = privacy_requests
        query = sa.select(t)
        if subject_id is not None:
            query = query.where(sa.or_(t.c.subject_id == subject_id, t.c.requester_id == subject_id))
        if states:
            query = query.where(t.c.state.in_(list(states)))
        if type is not None:
            query = query.where(t.c.type == type)
        if overdue_at is not None:
            query = query.where(t.c.due_at <= overdue_at)
        if after is not None:
            query = query.where(sa.tuple_(t.c.due_at, t.c.id) > sa.tuple_(sa.literal(after[0], TS),
                                                                          sa.literal(after[1])))
        rows = self.conn.execute(query.order_by(t.c.due_at, t.c.id).limit(limit)).all()
        return [RequestRow(**row._mapping) for row in rows]

    def count(self, *, states: Sequence[str], due_by: datetime) -> int:
        """How many requests in ``states`` are due at or before ``due_by``."""
        t = privacy_requests
        return int(self.conn.execute(sa.select(sa.func.count()).select_from(t).where(
            t.c.state.in_(list(states)), t.c.due_at <= due_by)).scalar_one())

    # -- the code notices
    def add_notice(self, notice: NoticeRow) -> None:
        self.conn.execute(privacy_request_notices.insert().values(**notice.__dict__))

    def notice(self, notice_id: str) -> NoticeRow | None:
        row = self.conn.execute(sa.select(privacy_request_notices)
                                .where(privacy_request_notices.c.id == notice_id)).first()
        return NoticeRow(**row._mapping) if row is not None else None

    def drop_notices_of(self, request_id: str) -> None:
        self.conn.execute(privacy_request_notices.delete().where(privacy_request_notices.c.request_id == request_id))

    def forget_expired_notices(self, now: datetime) -> None:
        self.conn.execute(privacy_request_notices.delete().where(privacy_request_notices.c.expires_at <= now))

    # -- rate limits
    def budget(self, key: str) -> tuple[datetime, int] | None:
        """The key's window and count, its row locked until the unit ends."""
        t = privacy_contact_budgets
        query = sa.select(t.c.window_start, t.c.count).where(t.c.key == key)
        if self.conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        return (row.window_start, row.count) if row is not None else None

    def set_budget(self, key: str, window_start: datetime, count: int) -> None:
        t = privacy_contact_budgets
        updated = self.conn.execute(t.update().where(t.c.key == key).values(window_start=window_start, count=count))
        if updated.rowcount == 0:
            try:
                with self.conn.begin_nested():
                    self.conn.execute(t.insert().values(key=key, window_start=window_start, count=count))
            except sa.exc.IntegrityError:  # inserted meanwhile: count on it
                self.conn.execute(t.update().where(t.c.key == key).values(count=t.c.count + 1))

    def forget_idle_budgets(self, before: datetime) -> None:
        self.conn.execute(privacy_contact_budgets.delete().where(privacy_contact_budgets.c.window_start < before))
