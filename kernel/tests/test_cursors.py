"""Keyset cursors (upgestao_kernel.cursors): what one encodes decodes back; anything else is a 422 on ``cursor``."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from upgestao_kernel.cursors import NOT_A_CURSOR, decode_time_cursor, encode_time_cursor
from upgestao_kernel.errors import ServiceError

ID = "6f1c1f5e-8a0b-4b8e-9d0e-3a1b2c3d4e5f"
AT = datetime(2026, 12, 2, 9, 3, 4, 567000, tzinfo=UTC)


def _raw(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def test_a_cursor_decodes_to_what_it_encoded_and_is_url_safe_without_padding():
    cursor = encode_time_cursor(AT, ID)
    assert decode_time_cursor(cursor) == (AT, ID)
    assert "=" not in cursor and "+" not in cursor and "/" not in cursor


def test_the_id_comes_back_in_canonical_form():
    assert decode_time_cursor(_raw([AT.isoformat(), ID.upper()])) == (AT, ID)


@pytest.mark.parametrize("cursor", [
    "", "!!!", "bm90IGpzb24", _raw({"at": AT.isoformat()}), _raw([AT.isoformat()]), _raw(["yesterday", ID]),
    _raw([AT.isoformat(), "not-a-uuid"]), _raw([AT.isoformat(), 5]), _raw([5, ID]), _raw([AT.isoformat(), ID, 1]),
    12345,
])
def test_anything_else_is_a_422_naming_the_cursor(cursor):
    with pytest.raises(ServiceError) as caught:
        decode_time_cursor(cursor)
    assert caught.value.status == 422
    assert caught.value.extensions["errors"] == [{"field": "cursor", "message": NOT_A_CURSOR}]
