"""Brute-force protection as pure arithmetic: attempt budgets with a progressive delay.

Every attempt of a key (an account's e-mail index, a client address, a reset request of either)
is counted *before* the password is checked, atomically (see the ``login_budgets`` repositories),
so parallel requests cannot get more guesses than the budget. The first ``allowance`` attempts
inside a window go through at once; after the ``n``-th attempt (``n >= allowance``) the key must
wait ``base * 2**(n - allowance)`` seconds (capped at ``max``) before its next attempt is even
counted. Nothing is ever locked for good: a client that keeps guessing only waits longer, and one
address behind which many people sit (a badly configured proxy) slows down rather than locking
everyone out. A window restarts after ``window_s`` seconds without an attempt; a successful login
clears its account's budget and gives its address its attempt back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class AttemptBudget:
    allowance: int
    window_s: int
    base_s: int
    max_s: int

    def __post_init__(self) -> None:
        if self.allowance < 1 or self.window_s < 1 or self.base_s < 1 or self.max_s < self.base_s:
            raise ValueError("an attempt budget needs allowance, window and base >= 1 and max >= base")

    def delay_after(self, attempts: int) -> int:
        """Seconds the key waits after its ``attempts``-th attempt of the window before the next one (0: none)."""
        if attempts < self.allowance:
            return 0
        return min(self.max_s, self.base_s * 2 ** min(attempts - self.allowance, 32))

    def quiet_since(self, now: datetime) -> datetime:
        """A key whose last attempt is at or before this instant starts a new window."""
        return now - timedelta(seconds=self.window_s)


def retry_after(blocked_until: datetime | None, now: datetime) -> int:
    """Whole seconds until ``blocked_until`` (at least 1: a client told 0 would come back at once)."""
    if blocked_until is None:
        return 1
    return max(1, math.ceil((blocked_until - now).total_seconds()))
