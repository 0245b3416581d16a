"""``Metrics``: the metrics of a service's ``run`` process, as a nameko dependency (issue 18).

Every service class declares it beside its database, the same way::

    class PrivacyService(...):
        db = Database(...)
        metrics = Metrics()                          # or Metrics(sources=[a_source, ...])

With the container it starts the ``/metrics`` listener on ``<SERVICE>_METRICS_ADDRESS`` (none when unset; a
bad or taken address stops the process with a ``ConfigError`` naming the variable), times every RPC
entrypoint's worker into ``upgestao_rpc_requests_total`` / ``upgestao_rpc_request_duration_seconds``
(``error``: the exception's class name, from a bounded set), and registers the scrape-time sources: the
kernel's outbox depth and relay lag, read from the service's own outbox through its ``Database``
dependency's engine, and the service's own ``sources`` (each ``source(engine) -> Iterable[Metric]``; see
:mod:`upgestao_kernel.metrics` for how to write one). The series live in the process's registry; nothing
here is needed to *update* a service's own counters (declare them with ``upgestao_kernel.metrics.counter``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence

from nameko.extensions import DependencyProvider
from nameko.rpc import Rpc as NamekoRpc
from prometheus_client.core import Metric

from ..metrics import add_source, metrics_address, metrics_variable, observe_rpc, outbox_source, serving
from .database import Database

EngineSource = Callable[[object], Iterable[Metric]]

_STARTED = "upgestao_metrics_started"


class Metrics(DependencyProvider):
    def __init__(self, sources: Sequence[EngineSource] = (), *, outbox: bool = True) -> None:
        """``sources``: the service's scrape-time gauges, each called with its database's engine;
        ``outbox``: export the outbox depth and relay lag (every service has an outbox)."""
        self.sources = tuple(sources)
        self.outbox = outbox
        self._serving: serving | None = None
        self._removers: list[Callable[[], None]] = []

    def setup(self) -> None:
        self.service = self.container.service_name
        # validated while the container sets up: a bad address stops ``run`` (exit 2) before it serves
        self.address = metrics_address(self.service, os.environ)

    def _engine(self):
        for dependency in self.container.dependencies:
            if isinstance(dependency, Database):
                return dependency.engine
        raise LookupError("the service has no Database dependency")

    def start(self) -> None:
        if self.outbox:
            self._removers.append(add_source(_lazy(lambda: outbox_source(self.service, self._engine()))))
        for source in self.sources:
            self._removers.append(add_source(_bound(source, self._engine)))
        self._serving = serving(self.address, metrics_variable(self.service))
        self._serving.__enter__()

    def stop(self) -> None:
        if self._serving is not None:
            self._serving.__exit__(None, None, None)
            self._serving = None
        for remove in self._removers:
            remove()
        self._removers.clear()

    kill = stop

    @property
    def bound_address(self) -> tuple[str, int] | None:
        """Where the listener listens (tests with port 0)."""
        server = self._serving.server if self._serving is not None else None
        return None if server is None or server._socket is None else server._socket.getsockname()[:2]

    def worker_setup(self, worker_ctx) -> None:
        if isinstance(worker_ctx.entrypoint, NamekoRpc):
            setattr(worker_ctx, _STARTED, time.perf_counter())

    def worker_result(self, worker_ctx, result=None, exc_info=None) -> None:
        started = getattr(worker_ctx, _STARTED, None)
        if started is None:
            return
        observe_rpc(self.service, worker_ctx.entrypoint.method_name, time.perf_counter() - started,
                    None if exc_info is None else exc_info[1])


def _lazy(make: Callable[[], Callable[[], Iterable[Metric]]]) -> Callable[[], Iterable[Metric]]:
    """A source built at its first scrape (the engine exists once the container started)."""
    built: list = []

    def source() -> Iterable[Metric]:
        if not built:
            built.append(make())
        return built[0]()

    source.__name__ = "outbox"
    return source


def _bound(source: EngineSource, engine: Callable[[], object]) -> Callable[[], Iterable[Metric]]:
    def bound() -> Iterable[Metric]:
        return source(engine())

    bound.__name__ = getattr(source, "__name__", "source")
    return bound
