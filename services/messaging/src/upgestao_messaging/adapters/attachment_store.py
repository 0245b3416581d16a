"""Where attachments are kept: one row each, their bytes, name and digest sealed under the container's data
subject (the customer of a conversation, the uploader in a chat), so erasing that person shreds them.

Only what the service must see without opening anything is in clear: the container, the subject, the
message it belongs to once sent, the uploader, the sniffed type, the size, the times. The name and the
SHA-256 are sealed too: a name is often personal ("exame_maria_silva.pdf"), and a digest in clear would let
anyone holding a copy of the database confirm that a known file was sent, even after erasure.

:class:`SqlAttachmentStore` works on a unit of work's connection, :class:`MemoryAttachmentStore` on a fake
unit of work's transaction (table ``attachments``, the same columns): the service layer reaches either as
``uow.attachments``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from upgestao_kernel.fakes import MemoryRepository
from upgestao_kernel.schema import UtcDateTime

from .tables import metadata

attachments = sa.Table(
    "attachments", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("container_kind", sa.String(20), nullable=False),
    sa.Column("container_id", sa.String(36), nullable=False),
    sa.Column("subject_id", sa.String(36), nullable=False),
    sa.Column("message_id", sa.String(36)),
    sa.Column("uploader_id", sa.String(36), nullable=False),
    sa.Column("content_type", sa.String(100), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("name_sealed", sa.Text),
    sa.Column("sha256_sealed", sa.Text),
    sa.Column("content_sealed", sa.Text),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("linked_at", UtcDateTime()),
    sa.Column("erased", sa.Boolean, nullable=False),
)
sa.Index("ix_attachments_message", attachments.c.message_id)
sa.Index("ix_attachments_subject", attachments.c.subject_id)
sa.Index("ix_attachments_pending", attachments.c.uploader_id, attachments.c.message_id, attachments.c.created_at)


@dataclass(frozen=True)
class AttachmentRecord:
    id: str
    container_kind: str
    container_id: str
    subject_id: str
    message_id: str | None
    uploader_id: str
    content_type: str
    size: int
    name_sealed: str | None
    sha256_sealed: str | None
    content_sealed: str | None  # None unless asked for (``with_content``), and once erased
    created_at: datetime
    linked_at: datetime | None
    erased: bool

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> AttachmentRecord:
        return cls(**{f.name: row.get(f.name) for f in fields(cls)})

    def as_row(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_METADATA_COLUMNS = [c for c in attachments.c if c.name != "content_sealed"]
_ERASE = {"name_sealed": None, "sha256_sealed": None, "content_sealed": None, "erased": True}


class SqlAttachmentStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, record: AttachmentRecord) -> None:
        self.conn.execute(attachments.insert().values(**record.as_row()))

    def get(self, attachment_id: str, *, with_content: bool = False) -> AttachmentRecord | None:
        columns = list(attachments.c) if with_content else _METADATA_COLUMNS
        row = self.conn.execute(sa.select(*columns).where(attachments.c.id == attachment_id)).mappings().first()
        return AttachmentRecord.of(row) if row else None

    def get_many(self, attachment_ids: Sequence[str]) -> dict[str, AttachmentRecord]:
        if not attachment_ids:
            return {}
        rows = self.conn.execute(sa.select(*_METADATA_COLUMNS).where(attachments.c.id.in_(set(attachment_ids))))
        return {row.id: AttachmentRecord.of(row._mapping) for row in rows}

    def link(self, attachment_ids: Sequence[str], *, message_id: str, container_kind: str, container_id: str,
             uploader_id: str, at: datetime) -> int:
        """Give the unlinked attachments among ``attachment_ids`` uploaded by ``uploader_id`` into this
        container to ``message_id``, in one conditional update (two sends racing for one attachment: one
        wins); returns how many were linked."""
        if not attachment_ids:
            return 0
        result = self.conn.execute(
            attachments.update()
            .where(attachments.c.id.in_(set(attachment_ids)), attachments.c.message_id.is_(None),
                   attachments.c.uploader_id == uploader_id, attachments.c.container_kind == container_kind,
                   attachments.c.container_id == container_id, attachments.c.erased.is_(False))
            .values(message_id=message_id, linked_at=at))
        return result.rowcount

    def pending_count(self, uploader_id: str) -> int:
        return self.conn.execute(
            sa.select(sa.func.count()).select_from(attachments)
            .where(attachments.c.uploader_id == uploader_id, attachments.c.message_id.is_(None))).scalar_one()

    def of_subject(self, subject_id: str) -> list[AttachmentRecord]:
        rows = self.conn.execute(sa.select(*_METADATA_COLUMNS).where(attachments.c.subject_id == subject_id)
                                 .order_by(attachments.c.created_at, attachments.c.id))
        return [AttachmentRecord.of(row._mapping) for row in rows]

    def erase_subject(self, subject_id: str) -> int:
        """Drop the sealed values of the subject's attachments (their key is shredded anyway); returns how
        many were not erased yet."""
        result = self.conn.execute(attachments.update().where(attachments.c.subject_id == subject_id,
                                                              attachments.c.erased.is_(False)).values(**_ERASE))
        return result.rowcount

    def unlinked_before(self, before: datetime, limit: int) -> list[str]:
        rows = self.conn.execute(sa.select(attachments.c.id)
                                 .where(attachments.c.message_id.is_(None), attachments.c.created_at < before)
                                 .order_by(attachments.c.created_at).limit(limit))
        return [row.id for row in rows]

    def delete(self, attachment_ids: Sequence[str]) -> int:
        if not attachment_ids:
            return 0
        result = self.conn.execute(attachments.delete().where(attachments.c.id.in_(set(attachment_ids)),
                                                              attachments.c.message_id.is_(None)))
        return result.rowcount


class MemoryAttachmentStore(MemoryRepository):
    """The same store on a fake unit of work (rows in its transaction: they commit and roll back with it)."""

    TABLE = "attachments"

    def _rows(self) -> list[dict[str, Any]]:
        return list(self.tx.table(self.TABLE).values())

    def add(self, record: AttachmentRecord) -> None:
        if self.tx.get(self.TABLE, record.id) is not None:
            raise ValueError(f"attachment {record.id} exists")  # the primary key's refusal
        self.tx.put(self.TABLE, record.id, record.as_row())

    def get(self, attachment_id: str, *, with_content: bool = False) -> AttachmentRecord | None:
        row = self.tx.get(self.TABLE, attachment_id)
        if row is None:
            return None
        record = AttachmentRecord.of(row)
        return record if with_content else replace(record, content_sealed=None)

    def get_many(self, attachment_ids: Sequence[str]) -> dict[str, AttachmentRecord]:
        return {aid: record for aid in set(attachment_ids) if (record := self.get(aid)) is not None}

    def link(self, attachment_ids: Sequence[str], *, message_id: str, container_kind: str, container_id: str,
             uploader_id: str, at: datetime) -> int:
        linked = 0
        for aid in set(attachment_ids):
            row = self.tx.get(self.TABLE, aid)
            if (row is not None and row["message_id"] is None and row["uploader_id"] == uploader_id
                    and row["container_kind"] == container_kind and row["container_id"] == container_id
                    and not row["erased"]):
                self.tx.update(self.TABLE, aid, message_id=message_id, linked_at=at)
                linked += 1
        return linked

    def pending_count(self, uploader_id: str) -> int:
        return sum(1 for r in self._rows() if r["uploader_id"] == uploader_id and r["message_id"] is None)

    def of_subject(self, subject_id: str) -> list[AttachmentRecord]:
        rows = sorted((r for r in self._rows() if r["subject_id"] == subject_id), key=lambda r: (r["created_at"],
                                                                                                 r["id"]))
        return [replace(AttachmentRecord.of(r), content_sealed=None) for r in rows]

    def erase_subject(self, subject_id: str) -> int:
        erased = 0
        for row in self._rows():
            if row["subject_id"] == subject_id and not row["erased"]:
                self.tx.update(self.TABLE, row["id"], **_ERASE)
                erased += 1
        return erased

    def unlinked_before(self, before: datetime, limit: int) -> list[str]:
        rows = sorted((r for r in self._rows() if r["message_id"] is None and r["created_at"] < before),
                      key=lambda r: r["created_at"])
        return [r["id"] for r in rows[:limit]]

    def delete(self, attachment_ids: Sequence[str]) -> int:
        deleted = 0
        for aid in set(attachment_ids):
            row = self.tx.get(self.TABLE, aid)
            if row is not None and row["message_id"] is None:
                self.tx.delete(self.TABLE, aid)
                deleted += 1
        return deleted
