"""Brute-force protection: the lockout policy, as pure arithmetic.

After ``threshold`` failures of one account inside the window, the account
is locked for ``base`` seconds after its last failure; every further failure
doubles that (``base * 2**(n - threshold)``, capped at ``max``). The same
rule applies per source address with its own, higher threshold. A lock ends
by itself; a successful login clears the account's failures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class LockoutPolicy:
    threshold: int
    window_s: int
    base_s: int
    max_s: int

    def locked_for(self, failures: int, last_failure: datetime | None, now: datetime) -> int:
        """Seconds the key stays locked (0 when not locked)."""
        if failures < self.threshold or last_failure is None:
            return 0
        lock = min(self.max_s, self.base_s * 2 ** min(failures - self.threshold, 32))
        remaining = (last_failure + timedelta(seconds=lock) - now).total_seconds()
        return max(0, math.ceil(remaining))
