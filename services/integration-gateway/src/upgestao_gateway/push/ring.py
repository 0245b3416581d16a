"""The replay ring: the last events of the push stream, by sequence id, bounded by count and age.

A sequence id is the event's offset in the RabbitMQ stream ``gateway.push-events``: offsets are contiguous
over *every* message of the stream (events and the replicas' sentinels alike), monotonic, and the same on
every gateway replica, so a client may resume on any of them with the last id it saw.

The ring knows two positions besides its entries:

* ``floor``: every event whose id is above it is in the ring or still to come. It starts one below the first
  offset read (the reader attached at a time: what came before it is unknown) and rises as entries are
  evicted. A client that last saw an id below the floor may have missed events: it is told to resync.
* ``head``: the highest offset read (a sentinel counts: it proves everything before it was read).

Memory is bounded by ``max_events`` entries, each held at most ``max_age_s`` (10,000 and 10 minutes by
default: Zulip keeps an idle client's queue 10 minutes).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Entry:
    """One event of the ring: its sequence id, the published envelope, when it was read (monotonic)."""

    seq: int
    event: Mapping[str, Any]
    read_at: float


class ReplayRing:
    def __init__(self, max_events: int = 10_000, max_age_s: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_events < 1 or max_age_s <= 0:
            raise ValueError("a replay ring holds at least one event for a positive time")
        self.max_events = max_events
        self.max_age_s = max_age_s
        self._clock = clock
        self._entries: deque[Entry] = deque()
        self.floor: int | None = None
        self.head: int | None = None

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def started(self) -> bool:
        """Whether anything was read yet (before that, nobody can resume)."""
        return self.head is not None

    def observe(self, offset: int) -> None:
        """A message of the stream was read at ``offset`` (an event or not): the head moves on."""
        if self.floor is None:
            self.floor = offset - 1
        if self.head is None or offset > self.head:
            self.head = offset

    def append(self, seq: int, event: Mapping[str, Any]) -> Entry | None:
        """Keep ``event`` under ``seq``; an offset at or below the head (a re-read after a reconnection the
        stream resumed before) is ignored: ``None``."""
        if self.head is not None and seq <= self.head:
            return None
        self.observe(seq)
        entry = Entry(seq, event, self._clock())
        self._entries.append(entry)
        self.prune()
        return entry

    def prune(self) -> None:
        """Drop entries beyond the count or older than the age; the floor rises with them."""
        limit = self._clock() - self.max_age_s
        entries = self._entries
        while entries and (len(entries) > self.max_events or entries[0].read_at <= limit):
            dropped = entries.popleft()
            if self.floor is None or dropped.seq > self.floor:
                self.floor = dropped.seq

    def can_resume(self, last_seq: int) -> bool:
        """Whether a client that last saw ``last_seq`` can be given everything after it."""
        self.prune()
        return self.floor is not None and last_seq >= self.floor

    def after(self, seq: int, upto: int | None = None) -> list[Entry]:
        """The entries with ``seq < id <= upto`` (``upto``: the head), oldest first. The caller checked
        :meth:`can_resume` (entries below the floor are gone)."""
        found: list[Entry] = []
        for entry in reversed(self._entries):
            if entry.seq <= seq:
                break
            if upto is None or entry.seq <= upto:
                found.append(entry)
        found.reverse()
        return found
