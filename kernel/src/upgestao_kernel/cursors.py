"""Keyset cursors: where a page of records ordered by (time, id) ends, as the opaque token an API hands out.

A cursor is the last record's ``[time, id]`` as JSON in unpadded URL-safe base64: opaque to a client, and
enough for the next query (``(time, id) < (at, id_)``, or ``>``) to continue where the page ended without
an offset that shifts when records come or go. It is not a secret and not signed: what it names is checked
again by the query (only what the caller may see is listed), so a forged cursor can only skip or repeat.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

from .errors import invalid_field

NOT_A_CURSOR = "not a cursor this API gave"


def encode_time_cursor(at: datetime, id_: str) -> str:
    """The cursor after the record at ``(at, id_)``."""
    return base64.urlsafe_b64encode(json.dumps([at.isoformat(), id_]).encode()).decode().rstrip("=")


def decode_time_cursor(cursor: object) -> tuple[datetime, str]:
    """``(at, id)`` from a cursor :func:`encode_time_cursor` gave, the id a UUID in canonical form; anything
    else is a 422 naming ``cursor``."""
    text = str(cursor)
    try:
        at, id_ = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not isinstance(at, str) or not isinstance(id_, str):
            raise TypeError("not [time, id]")
        return datetime.fromisoformat(at), str(uuid.UUID(id_))
    except (ValueError, TypeError, binascii.Error):
        raise invalid_field("cursor", NOT_A_CURSOR) from None
