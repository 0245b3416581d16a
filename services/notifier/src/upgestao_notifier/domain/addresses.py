"""What the notifier keeps of an address: a keyed hash, for the suppression list, and nothing else."""

from __future__ import annotations

import hashlib
import hmac


def normalised(address: str) -> str:
    return address.strip().lower()


def address_hash(key: bytes, address: str) -> str:
    """HMAC-SHA256 under the notifier's suppression key: equal for the same mailbox, useless without the key
    (an unkeyed hash of an e-mail is found again by hashing a list of addresses)."""
    return hmac.new(key, normalised(address).encode("utf-8"), hashlib.sha256).hexdigest()
