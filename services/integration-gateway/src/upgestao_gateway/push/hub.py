"""The push hub: the open sockets of one gateway process, and the dispatcher that feeds them.

Every authenticated socket (:class:`Subscriber`) has a *cursor*: the sequence id up to which it has been
served. The dispatcher, one green thread, wakes when the ring grows or a socket joins, and serves the
sockets whose cursor is behind the ring's head, grouped by cursor (live sockets share one; a reconnection
that asked to resume has its own): for each group it asks ``messaging.push_view`` once for the group's
events and viewers (batched: the events that arrived during the previous call go in one call), sends each
socket only what messaging returned for it, and moves the group's cursors to the head. One dispatcher means
one call at a time, in sequence order: a socket never receives an event twice nor out of order, and a
reconnection with ``last_seq`` receives what it missed before what comes next.

When messaging cannot be reached, the cursors stay where they are and the call is retried with back-off;
a socket whose cursor falls below the ring's floor meanwhile is told to resync.

The sweep, every ``sweep_s``, closes (4001) the sockets whose token was revoked (the gateway's revocation
view: identity's ``session_revoked`` events, read from the access-events stream) or has expired.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import eventlet
from eventlet.event import Event
from upgestao_kernel.consumers.backoff import Backoff, GreenStop
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.logging import get_logger

from ..access.events import epoch
from ..domain.principal import Principal
from ..settings import LEEWAY_S
from . import protocol
from .ring import ReplayRing
from .settings import PushSettings

log = get_logger(__name__)

MAX_ITEMS_PER_CALL = 200
MAX_VIEWERS_PER_CALL = 500


class MessagingViews(Protocol):
    """``messaging.push_view``: what each viewer may be pushed of the events (see issue 13's contract)."""

    def push_view(self, items: list[dict], viewers: list[str]) -> Mapping[str, Any]: ...


class RevocationCheck(Protocol):
    def is_revoked(self, session_id: str) -> bool: ...


class Sink(Protocol):
    """Where a subscriber's frames go (the socket's writer); ``close`` ends the socket with a code."""

    def send(self, message: Mapping[str, Any]) -> bool: ...

    def close(self, code: int, reason: str) -> None: ...


@dataclass(eq=False)
class Subscriber:
    """One authenticated socket."""

    principal: Principal
    token: str
    sink: Sink
    cursor: int = -1
    closed: bool = False
    joined_at: float = field(default_factory=time.monotonic)

    @property
    def user_id(self) -> str:
        return self.principal.actor_id


class JoinRefused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class PushHub:
    def __init__(self, settings: PushSettings, ring: ReplayRing, messaging: MessagingViews,
                 revocations: RevocationCheck | None = None, *, wait_current: Callable[[float], bool] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.ring = ring
        self.messaging = messaging
        self.revocations = revocations
        self._wait_current = wait_current or (lambda timeout_s: ring.started)
        self._clock = clock
        self.subscribers: set[Subscriber] = set()
        self._by_user: dict[str, set[Subscriber]] = defaultdict(set)
        self.sockets = 0  # open sockets, authenticated or not (the process-wide cap)
        self._wake = Event()
        self._stop = GreenStop()
        self._threads: list[Any] = []
        self.pushed = 0  # events sent (metrics, tests)
        self.calls = 0  # push_view calls made

    # -- life cycle ------------------------------------------------------------

    def start(self, spawn: Callable[[Callable[[], None]], Any]) -> None:
        self._stop.clear()
        self._threads = [spawn(self.dispatch_forever), spawn(self.sweep_forever)]

    def stop(self) -> None:
        """Stop dispatching and close every socket with 1001 (going away: reconnect elsewhere)."""
        self._stop.set()
        self.wake()
        for subscriber in list(self.subscribers):
            self.drop(subscriber, protocol.GOING_AWAY, "The gateway is restarting.")
        for thread in self._threads:
            thread.kill()
        self._threads = []

    def wake(self) -> None:
        """Something to dispatch (an event kept, a socket joined)."""
        if not self._wake.ready():
            self._wake.send(True)

    # -- sockets -----------------------------------------------------------------

    def may_open(self) -> bool:
        return self.sockets < self.settings.max_connections

    def join(self, principal: Principal, token: str, sink: Sink, last_seq: int | None) -> Subscriber:
        """Register an authenticated socket; it gets ``ready``, then ``resync`` if ``last_seq`` is older than
        the ring, then the events after its cursor. :class:`JoinRefused` when the user has too many sockets or
        the stream is not read up to date."""
        if not self._wait_current(5.0) or self.ring.head is None:
            raise JoinRefused(protocol.TRY_AGAIN_LATER, "The gateway is still reading events; try again shortly.")
        if last_seq is not None and last_seq > self.ring.head:
            self._catch_up(last_seq)
        # counted after the waits (they yield): two sockets of one user joining together are both counted
        if len(self._by_user[principal.actor_id]) >= self.settings.max_per_user:
            raise JoinRefused(protocol.TOO_MANY, "Too many open streams for this user.")
        head = self.ring.head
        # ahead of a current ring even now: not an offset of this stream (it was declared again): resync
        resync = last_seq is not None and (not self.ring.can_resume(last_seq) or last_seq > head)
        cursor = head if last_seq is None or resync else last_seq  # behind the head: replayed from there
        subscriber = Subscriber(principal, token, sink, cursor)
        self.subscribers.add(subscriber)
        self._by_user[principal.actor_id].add(subscriber)
        sink.send({"type": "ready", "seq": cursor})
        if resync:
            sink.send({"type": "resync", "seq": cursor})
        log.info("push.joined", user_id=principal.actor_id, resumed=last_seq is not None and not resync,
                 resync=resync, sockets=len(self.subscribers))
        self.wake()
        return subscriber

    def _catch_up(self, seq: int) -> None:
        """Give this replica a moment to read up to ``seq``: another one served it that far already."""
        deadline = time.monotonic() + self.settings.resume_ahead_wait_s
        while self.ring.head < seq and time.monotonic() < deadline:
            eventlet.sleep(0.02)

    def renew(self, subscriber: Subscriber, principal: Principal, token: str) -> bool:
        """A new token for an open socket: accepted for the same user only."""
        if principal.actor_id != subscriber.user_id:
            return False
        subscriber.principal, subscriber.token = principal, token
        return True

    def leave(self, subscriber: Subscriber) -> None:
        subscriber.closed = True
        self.subscribers.discard(subscriber)
        mine = self._by_user.get(subscriber.user_id)
        if mine is not None:
            mine.discard(subscriber)
            if not mine:
                del self._by_user[subscriber.user_id]

    def drop(self, subscriber: Subscriber, code: int, reason: str) -> None:
        self.leave(subscriber)
        subscriber.sink.close(code, reason)

    # -- the sweep: revoked and expired tokens ------------------------------------

    def sweep_forever(self) -> None:
        while not self._stop.is_set():
            try:
                self.sweep()
            except Exception:  # never let the sweep die: it is what closes revoked sockets
                log.error("push.sweep_failed", exc_info=True)
            self._stop.wait(self.settings.sweep_s)

    def sweep(self) -> int:
        """Close the sockets whose token was revoked or expired; how many were closed."""
        now = self._clock()
        closed = 0
        for subscriber in list(self.subscribers):
            principal = subscriber.principal
            reason = None
            if principal.expires_at is not None and principal.expires_at.timestamp() + LEEWAY_S < now:
                reason = "The access token has expired."
            elif (principal.session_id and self.revocations is not None
                  and self.revocations.is_revoked(principal.session_id)):
                reason = "The access token has been revoked."
            if reason is not None:
                self.drop(subscriber, protocol.UNAUTHENTICATED, reason)
                log.info("push.closed_by_sweep", user_id=subscriber.user_id, reason=reason)
                closed += 1
        return closed

    # -- the dispatcher -------------------------------------------------------------

    def dispatch_forever(self) -> None:
        backoff = Backoff(0.2, 2.0)
        while not self._stop.is_set():
            self._wake.wait()
            self._wake = Event()
            if self._stop.is_set():
                return
            try:
                self.dispatch()
            except Exception as exc:  # messaging away, a broker error: the cursors stayed, try again
                log.warning("push.dispatch_failed", error=type(exc).__name__)
                self._stop.wait(backoff.next_delay())
                self.wake()
            else:
                backoff.reset()

    def dispatch(self) -> None:
        """Serve every subscriber whose cursor is behind the head (see the module docstring).

        The most recent cursor (the live sockets') is served first, and a group far behind (a reconnection
        replaying thousands of events) gets one call's worth per round: a replay never holds back what the
        live sockets are waiting for."""
        head = self.ring.head
        if head is None:
            return
        groups: dict[int, list[Subscriber]] = defaultdict(list)
        for subscriber in self.subscribers:
            if subscriber.cursor < head:
                groups[subscriber.cursor].append(subscriber)
        behind = False
        for cursor in sorted(groups, reverse=True):
            members = [s for s in groups[cursor] if not s.closed]
            if not members:
                continue
            if not self.ring.can_resume(cursor):  # messaging was away longer than the window
                self._resync(members, head)
                continue
            entries = self.ring.after(cursor, head)[:MAX_ITEMS_PER_CALL]
            upto = entries[-1].seq if len(entries) == MAX_ITEMS_PER_CALL else head
            items = [{"seq": e.seq, "event": dict(e.event)} for e in entries]
            try:
                for viewers in _chunks(members, MAX_VIEWERS_PER_CALL):
                    if items:
                        self._serve(items, viewers)
            except ServiceError as refused:
                if not 400 <= refused.status < 500:
                    raise
                # messaging will never accept these (asking again would stop the stream for good): the
                # sockets skip them and read the state again over HTTP
                log.error("push.batch_refused", status=refused.status, slug=refused.slug, items=len(items))
                self._resync(members, upto)
                continue
            for subscriber in members:
                subscriber.cursor = max(subscriber.cursor, upto)
            behind = behind or upto < head
        if behind:
            self.wake()

    def _resync(self, members: Iterable[Subscriber], seq: int) -> None:
        for subscriber in members:
            subscriber.cursor = max(subscriber.cursor, seq)
            subscriber.sink.send({"type": "resync", "seq": seq})

    def _serve(self, items: list[dict], viewers: Sequence[Subscriber]) -> None:
        self.calls += 1
        started = time.perf_counter()
        answer = self.messaging.push_view(items=items, viewers=[viewer.token for viewer in viewers])
        log.info("push.viewed", items=len(items), viewers=len(viewers), pushes=len(answer.get("items") or ()),
                 duration_ms=round((time.perf_counter() - started) * 1000, 1), age_ms=_age_ms(items[-1]))
        for item in answer.get("items") or ():
            index = item.get("viewer")
            if not isinstance(index, int) or not 0 <= index < len(viewers):
                continue
            viewer = viewers[index]
            if viewer.closed or not isinstance(item.get("seq"), int) or item["seq"] <= viewer.cursor:
                continue
            if viewer.sink.send({"type": item.get("type"), "seq": item["seq"], "data": item.get("data")}):
                self.pushed += 1
            else:
                self.drop(viewer, protocol.TOO_SLOW, "The client did not read its events in time.")


def _chunks(values: list, size: int) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _age_ms(item: Mapping[str, Any]) -> float | None:
    """How long ago messaging recorded the event (its envelope's ``occurred_at``): the whole pipeline's
    delay (transaction, outbox relay, stream, push_view), as pushed."""
    occurred_at = epoch(item["event"].get("occurred_at"))
    return None if occurred_at is None else round((time.time() - occurred_at) * 1000, 1)
