"""Keyset pagination over a read model ordered by ``(created_at, id)``: stable under inserts,
with an opaque cursor (``?limit=&cursor=`` -> ``{items, next_cursor}``). The repositories fetch
the rows after a cursor; this module owns the cursor and the page size."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from upgestao_kernel.errors import field_error, validation_error

from ..adapters.ports import Cursor

PAGE_MAX = 100


def keyset_page(fetch: Callable[[int, Cursor | None], Sequence[Any]], limit: int,
                cursor: str | None) -> tuple[Sequence[Any], str | None]:
    """``(records of this page, next cursor or None)``; ``fetch(n, after)`` returns up to n records."""
    limit = max(1, min(PAGE_MAX, int(limit)))
    rows = fetch(limit + 1, decode_cursor(cursor) if cursor else None)
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
