"""Tables of privacy's erasure area, on the audit log's metadata, and the store of access bundles' parts.

Erasures and links are event-sourced (streams ``erasure-<request>``, ``export-<request>``,
``export-link-<token hash>``: read back with ``uow.load``), so they need no read model. The one table is
``export_parts``: a bundle's JSON text in parts, each vault ciphertext sealed under the person (field
``bundle_part``), kept apart from the events (a bundle of 10,000 messages is megabytes) until its download
ends (then deleted) or the person is erased (then unreadable: their key is gone).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from upgestao_kernel.schema import UtcDateTime

from .tables import metadata

export_parts = sa.Table(
    "export_parts",
    metadata,
    sa.Column("request_id", sa.String(36), primary_key=True),
    sa.Column("part", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("subject_id", sa.String(36), nullable=False),
    sa.Column("sealed", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

# What the runtime role may do on this area's tables (merged into database_roles.RUNTIME_PRIVILEGES):
# parts are written once, read by the download, deleted when it ends
PRIVILEGES: Mapping[str, tuple[str, ...]] = {
    "export_parts": ("SELECT", "INSERT", "DELETE"),
}


class ExportParts(Protocol):
    """Where a bundle's sealed parts wait for their download (on a unit of work's connection)."""

    def put(self, request_id: str, part: int, subject_id: str, sealed: str, at: datetime) -> None: ...

    def get(self, request_id: str, part: int) -> dict[str, Any] | None: ...

    def delete(self, request_id: str) -> int: ...

    def delete_subject(self, subject_id: str) -> int: ...


class SqlExportParts:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def put(self, request_id: str, part: int, subject_id: str, sealed: str, at: datetime) -> None:
        self.conn.execute(export_parts.insert().values(request_id=request_id, part=part, subject_id=subject_id,
                                                       sealed=sealed, created_at=at))

    def get(self, request_id: str, part: int) -> dict[str, Any] | None:
        row = self.conn.execute(sa.select(export_parts.c.subject_id, export_parts.c.sealed).where(
            export_parts.c.request_id == request_id, export_parts.c.part == part)).first()
        return None if row is None else {"subject_id": row.subject_id, "sealed": row.sealed}

    def delete(self, request_id: str) -> int:
        return self.conn.execute(export_parts.delete().where(export_parts.c.request_id == request_id)).rowcount

    def delete_subject(self, subject_id: str) -> int:
        return self.conn.execute(export_parts.delete().where(export_parts.c.subject_id == subject_id)).rowcount


class MemoryExportParts:
    """The same store in a fake unit of work's :class:`~upgestao_kernel.fakes.MemoryTransaction`."""

    TABLE = "export_parts"

    def __init__(self, tx: Any) -> None:
        self.tx = tx

    def put(self, request_id: str, part: int, subject_id: str, sealed: str, at: datetime) -> None:
        self.tx.put(self.TABLE, (request_id, part), {"subject_id": subject_id, "sealed": sealed, "created_at": at})

    def get(self, request_id: str, part: int) -> dict[str, Any] | None:
        return self.tx.get(self.TABLE, (request_id, part))

    def delete(self, request_id: str) -> int:
        return self._delete(lambda key, row: key[0] == request_id)

    def delete_subject(self, subject_id: str) -> int:
        return self._delete(lambda key, row: row["subject_id"] == subject_id)

    def _delete(self, match: Any) -> int:
        keys = [key for key, row in self.tx.table(self.TABLE).items() if match(key, row)]
        for key in keys:
            self.tx.delete(self.TABLE, key)
        return len(keys)


def export_parts_of(uow: Any) -> ExportParts:
    """The parts store on ``uow``'s connection: SQL on a real unit of work, in memory on a fake one."""
    conn = uow.conn
    return SqlExportParts(conn) if isinstance(conn, sa.engine.Connection) else MemoryExportParts(conn)


# -- privacy's own records of a person: the events of its rights areas that name them


SUBJECT_KEYS = ("subject_id", "requester_id", "user_id")  # the data members that name a person
PRIVATE_STREAMS = ("export-link-",)  # streams keyed by a secret's hash: never handed out


def subject_events(uow: Any, subject_id: str) -> list[Any]:
    """Every event of the streams of privacy's event log that name ``subject_id`` (as subject, requester or
    user) in any of their events, in order: a person's requests (a contact-channel request's filing too, which
    names nobody until its code is given back), corrections, consents and acceptances, erasures and bundles."""
    conn = uow.conn
    if isinstance(conn, sa.engine.Connection):
        from upgestao_kernel.eventstore import _envelope  # the kernel's row -> envelope
        from upgestao_kernel.schema import events

        matches = sa.or_(*(events.c.data[key].as_string() == subject_id for key in SUBJECT_KEYS))
        streams = sa.select(events.c.stream_id).where(matches).distinct().scalar_subquery()
        rows = conn.execute(sa.select(events).where(events.c.stream_id.in_(streams)).order_by(events.c.position))
        found = [_envelope(row) for row in rows]
    else:  # a fake unit of work: the store's events and the unit's own
        every = [*conn.store.events, *conn.events]
        streams = {e.stream_id for e in every if any(e.data.get(key) == subject_id for key in SUBJECT_KEYS)}
        found = [e for e in every if e.stream_id in streams]
    return [e for e in found if not e.stream_id.startswith(PRIVATE_STREAMS)]
