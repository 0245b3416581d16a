"""Where photos are decoded: off the eventlet hub, a bounded number at a time.

Decoding and re-encoding a 12 MP photo takes about a second of CPU and tens of MB; run inline
it would freeze every greenlet of the identity process (``GET /v1/me`` included). So the
sanitiser runs in eventlet's OS thread pool (Pillow releases the GIL while it decodes), at most
``concurrency`` at once; an upload arriving when every slot is taken is refused at once
(:class:`PhotosBusy`, answered 503 with ``Retry-After``) rather than queued without bound.

The service takes its slot with :meth:`PhotoWorkers.reserved` before it opens any unit of work: a
full pool is then refused before a keyed request has claimed its key (a 503 after the claim would
leave the key "claimed", and the gateway's retry would find the outcome unknown), and the slot is
certain once the upload is authorised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from eventlet.semaphore import Semaphore

from .hashing import Offload, default_offload

T = TypeVar("T")


class PhotosBusy(Exception):
    """Every photo slot is decoding already: try again shortly."""


class PhotoWorkers:
    def __init__(self, concurrency: int, offload: Offload | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency >= 1")
        self.concurrency = concurrency
        self._offload = offload if offload is not None else default_offload()
        self._slots = Semaphore(concurrency)
        self.refused = 0

    @contextmanager
    def reserved(self) -> Iterator[Callable[..., Any]]:
        """A slot, or :class:`PhotosBusy` at once; yields the offload that runs in it."""
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            raise PhotosBusy(f"{self.concurrency} photos being decoded already")
        try:
            yield self._offload
        finally:
            self._slots.release()

    def __call__(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` in a slot of its own (taken and given back around the call)."""
        with self.reserved() as run:
            return run(func, *args)
