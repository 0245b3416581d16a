"""The bytes of an audit log leaf: canonical JSON of a record with its sequence number."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# what json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
# builds on every call, built once (the verifier encodes every record of an export)
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(obj: Any) -> bytes:
    """UTF-8 JSON with sorted keys and no whitespace; NaN and infinities are refused (ValueError)."""
    return _ENCODER.encode(obj).encode("utf-8")


def leaf_for(record: Mapping[str, Any], seq: int) -> bytes:
    """The leaf bytes of ``record`` stored at ``seq`` (0-based, its leaf index): the record with ``"seq"`` set."""
    return canonical_json({**record, "seq": seq})
