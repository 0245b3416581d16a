"""Where photos are decoded: off the eventlet hub, a bounded number at a time.

Decoding and re-encoding a 12 MP photo takes about a second of CPU and tens of MB; run inline
it would freeze every greenlet of the identity process (``GET /v1/me`` included). So the
sanitiser runs in eventlet's OS thread pool (Pillow releases the GIL while it decodes), at most
``concurrency`` at once; an upload arriving when every slot is taken is refused at once
(:class:`PhotosBusy`, answered 503 with ``Retry-After``) rather than queued without bound.
"""

from __future__ import annotations

from collections.abc import Callable
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

    def __call__(self, func: Callable[..., T], *args: Any) -> T:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            raise PhotosBusy(f"{self.concurrency} photos being decoded already")
        try:
            return self._offload(func, *args)
        finally:
            self._slots.release()
