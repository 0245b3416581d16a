"""Streamed answers: chunks produced in the route's worker while they are sent.

A route declared with ``response=StreamResponse(...)`` returns a :class:`Stream`; the worker goes on
producing its chunks after the status and headers are sent, handing them to the connection through a
:class:`Pipe` (a few chunks at most are held, so a slow client slows the producer down).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eventlet import wsgi
from eventlet.queue import Empty, Full, LightQueue
from upgestao_kernel.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Stream:
    """The answer of a route declared with ``response=StreamResponse(...)``.

    ``chunks`` (bytes or str; a generator, typically) is iterated in the
    route's worker *after* the status and headers are sent, so the worker's
    dependencies (``self.rpc``) still serve it. An exception while iterating
    is logged and ends the transfer abruptly (no final chunk): the client sees
    a truncated body, never a well-formed one that merely stops early.
    """

    chunks: Iterable[bytes | str]
    headers: Mapping[str, str] = field(default_factory=dict)


_END = object()


class Pipe:
    """Chunks of a :class:`Stream` from the route's worker to the HTTP connection.

    The worker (:meth:`feed`) waits while the client is slow (a few chunks are
    held at most) and gives up once the connection is done with the response
    (:meth:`close`, called by the WSGI server). The connection's side is the
    WSGI response body (iterating this object).
    """

    max_chunks = 4
    poll_s = 1.0
    idle_timeout_s = 120.0  # the worker produced nothing for this long: end the transfer

    def __init__(self) -> None:
        self._queue: LightQueue = LightQueue(self.max_chunks)
        self.closed = False  # the connection is done with the response (sent, or the client left)
        self.finished = False  # the worker produced its last chunk (or failed)
        self.failed = False

    # -- the worker's side

    def feed(self, chunks: Iterable[bytes | str], close: Callable[[], Any] | None = None, **log_context: Any) -> None:
        """Send ``chunks`` (then call ``close``, the source's, if given), in the worker."""
        count = 0
        try:
            for chunk in chunks:
                data = chunk if isinstance(chunk, bytes) else chunk.encode("utf-8")
                if data and not self._put(data):  # the client went away, or stopped reading
                    self.failed = True
                    log.info("http.stream_abandoned", chunks=count, **log_context)
                    return
                count += 1
        except Exception:
            self.failed = True
            log.error("http.stream_failed", chunks=count, **log_context, exc_info=True)
        finally:
            try:
                if close is not None:
                    close()  # a generator left early runs its cleanup now, in the worker
            except Exception:
                log.error("http.stream_close_failed", **log_context, exc_info=True)
            self.finished = True
            try:
                self._queue.put_nowait(_END)
            except Full:  # the connection sees `finished` once it has taken what is queued
                pass

    def _put(self, data: bytes) -> bool:
        waited = 0.0
        while not self.closed and waited < self.idle_timeout_s:  # (a connection that died unseen)
            try:
                self._queue.put(data, timeout=self.poll_s)
                return True
            except Full:
                waited += self.poll_s
        return False

    # -- the connection's side (the WSGI response body)

    def __iter__(self):
        idle = 0.0
        while True:
            try:
                item = self._queue.get(timeout=self.poll_s)
            except Empty:
                if self.finished:
                    break
                idle += self.poll_s
                if idle >= self.idle_timeout_s:
                    log.error("http.stream_stalled", idle_s=idle)
                    self.failed = True
                    break
                continue
            if item is _END:
                break
            idle = 0.0
            yield item
        if self.failed:
            # End the transfer without its final chunk: the client must see a truncated body.
            wsgi.WSGI_LOCAL.already_handled = True

    def close(self) -> None:
        self.closed = True
