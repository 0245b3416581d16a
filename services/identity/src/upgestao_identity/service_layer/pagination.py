"""Keyset pagination over a read model ordered by ``(created_at, id)``: stable under inserts,
with an opaque cursor (``?limit=&cursor=`` -> ``{items, next_cursor}``)."""

from __future__ import annotations

import base64
import json
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from upgestao_kernel.errors import field_error, validation_error

PAGE_MAX = 100


def keyset_page(conn: Connection, query: sa.Select, table: sa.Table, limit: int, cursor: str | None):
    """``(rows of this page, next cursor or None)``."""
    limit = max(1, min(PAGE_MAX, int(limit)))
    query = query.order_by(table.c.created_at, table.c.id).limit(limit + 1)
    if cursor:
        created_at, last_id = decode_cursor(cursor)
        query = query.where(sa.or_(table.c.created_at > created_at,
                                   sa.and_(table.c.created_at == created_at, table.c.id > last_id)))
    rows = conn.execute(query).all()
    page = rows[:limit]
    return page, (encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None)


def encode_cursor(created_at: datetime, last_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), last_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, last_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(created_at), str(last_id)
    except (ValueError, TypeError):
        raise validation_error([field_error("cursor", "is not a cursor this API returned")],
                               "The request query is invalid.") from None
