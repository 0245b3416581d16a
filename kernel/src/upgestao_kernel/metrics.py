"""Prometheus metrics of every process (issue 18): the series the kernel owns, the listener, scrape-time sources.

Every service's ``run`` process serves ``GET /metrics`` (Prometheus text format) on
``<SERVICE>_METRICS_ADDRESS`` and its relay on ``<SERVICE>_RELAY_METRICS_ADDRESS`` (``IDENTITY_``,
``MESSAGING_``, ``PRIVACY_``, ``NOTIFIER_``, ``INTEGRATIONS_``, ``GATEWAY_``:
:func:`~upgestao_kernel.config.env_prefix`),
``host:port``, validated at start (a :class:`~upgestao_kernel.config.ConfigError` naming the variable);
unset or empty: no listener. Never the gateway's public port. Every process also exports prometheus_client's
process, platform and GC collectors (the default registry's).

The series' names are fixed by the metrics contract (``upgestao_`` prefix, seconds, bounded labels). The
kernel records the generic ones itself: RPC (``nameko_ext.metrics.Metrics``, a dependency of every service),
outbox depth and relay lag (scrape-time, read from the service's own outbox), the relay's publishes and
failures, the parking queues' and ``upgestao.unrouted``'s depth (the relay), the consumers' outcomes
(``reliable_handler``, ``BatchConsumer``). A service adds its own in three ways:

1. **A counter, gauge or histogram it updates itself** (logins, attempts): declare it once, at module level,
   in a module of its own outside ``domain/`` (``adapters/metrics.py`` say), with :func:`counter`,
   :func:`gauge` or :func:`histogram` (they register in the process's registry once, and hand back the same
   object when a test imports the module again)::

       from upgestao_kernel.metrics import counter
       LOGIN_ATTEMPTS = counter("upgestao_login_attempts_total", "Login attempts by outcome.", ["outcome"])
       LOGIN_ATTEMPTS.labels(outcome="locked").inc()

   Pre-create every label value you know (``LOGIN_ATTEMPTS.labels(outcome=o)`` for each) so the series exist
   at 0 before the first event (a rate over a series that appears later misses its first increment).

2. **A gauge read at scrape time from the service's own database** (deliveries per state, open requests):
   a *source*, ``source(engine) -> Iterable[Metric]``, handed to the service's ``Metrics`` dependency::

       from prometheus_client.core import GaugeMetricFamily
       def delivery_states(engine):
           family = GaugeMetricFamily("upgestao_email_deliveries", "E-mail deliveries by state.", labels=["state"])
           with engine.connect() as conn:  # read_only: on SQLite a scrape must not take the write lock
               for state, n in read_only(conn).execute(sa.select(t.c.state, sa.func.count()).group_by(t.c.state)):
                   family.add_metric([state], n)
           return [family]

       class NotifierService(...):
           metrics = Metrics(sources=[delivery_states])   # in service.py, beside db = Database(...)

   The source runs in the listener's green thread on each scrape (keep it to an indexed query or two: a
   Prometheus scrapes every 15 s or so; a table that grows for years is counted by
   :class:`~upgestao_kernel.state_counts.StateCounts`); one that raises is logged (its error's type) and skipped, the
   rest of the scrape is served. Families of the same name from several sources are merged. Outside a
   nameko container (a relay loop, a test) :func:`add_source` registers a source with no arguments.

3. **Nothing at all** for the generic series: RPC methods, consumers and the outbox are counted by the
   kernel as soon as the service has its ``metrics = Metrics()`` dependency and uses the kernel's toolkit.

``UPGESTAO_METRICS=off`` (default ``on``) turns it all off in a process: every series is declared as one that
records nothing, and no listener is opened (the baseline of ``make bench SCENARIOS=identity``'s metrics
cost; a deployment that scrapes nothing).

Label values are bounded enums or route templates only: never an id, an e-mail, a name, a raw path or free
text (``tests/test_metrics_e2e.py`` checks every scraped value).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .config import ConfigError, env_prefix
from .logging import get_logger
from .side_port import SidePortListener, host_port, http_response, request_line

log = get_logger(__name__)

METRICS_SWITCH = "UPGESTAO_METRICS"  # on (default) | off
METRICS_SUFFIX = "_METRICS_ADDRESS"
RELAY_METRICS_SUFFIX = "_RELAY_METRICS_ADDRESS"
MAX_CONNECTIONS = 8
READ_TIMEOUT_S = 5.0

# durations of an RPC or an HTTP request: 1 ms .. 30 s (the RPC timeout's range)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


# -- addresses -------------------------------------------------------------------------------------------

def metrics_variable(service: str, *, relay: bool = False) -> str:
    """``IDENTITY_METRICS_ADDRESS`` (``relay``: ``IDENTITY_RELAY_METRICS_ADDRESS``)."""
    return env_prefix(service) + (RELAY_METRICS_SUFFIX if relay else METRICS_SUFFIX)


def parse_address(variable: str, raw: str | None) -> tuple[str, int] | None:
    """``host:port`` as ``(host, port)``; ``None`` when unset or empty; ``[::]:9100`` for IPv6. A
    :class:`ConfigError` naming ``variable`` otherwise."""
    return host_port(variable, raw, "0.0.0.0:9100")


def metrics_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``UPGESTAO_METRICS`` leaves metrics on (``on``, the default, or ``off``; anything else is a
    :class:`ConfigError`)."""
    value = (environ.get(METRICS_SWITCH) or "on").strip().lower()
    if value not in ("on", "off"):
        raise ConfigError(METRICS_SWITCH, f"expected on or off, got {value!r}")
    return value == "on"


def metrics_address(service: str, environ: Mapping[str, str], *, relay: bool = False) -> tuple[str, int] | None:
    """Where this service's ``run`` (``relay``: its relay) serves ``/metrics``; ``None``: nowhere (no address,
    or ``UPGESTAO_METRICS=off``)."""
    if not metrics_enabled(environ):
        return None
    variable = metrics_variable(service, relay=relay)
    address = parse_address(variable, environ.get(variable))
    if address is not None and not relay and service == "gateway":
        public = (environ.get("GATEWAY_HTTP_ADDRESS") or "127.0.0.1:8000").strip()
        if public.rpartition(":")[2] == str(address[1]):
            raise ConfigError(variable, "must not be the gateway's public port (GATEWAY_HTTP_ADDRESS)")
    return address


def check_addresses(service: str, environ: Mapping[str, str]) -> None:
    """The switch and both addresses of ``service`` validated (``check-config``)."""
    metrics_enabled(environ)
    metrics_address(service, environ)
    metrics_address(service, environ, relay=True)


# -- declaring series ------------------------------------------------------------------------------------

_declared: dict[str, object] = {}
_declare_lock = threading.Lock()


class _Unrecorded:
    """A series that records nothing (``UPGESTAO_METRICS=off``): every child is itself, every update a no-op."""

    def labels(self, *values: object, **named: object) -> _Unrecorded:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, value: float, exemplar: object = None) -> None:
        pass


_UNRECORDED = _Unrecorded()


def _switched_on() -> bool:
    try:
        return metrics_enabled()
    except ConfigError:
        return True  # check_addresses (check-config, start) says what is wrong; a module import must not fail


def _declare(kind: type, name: str, documentation: str, labels: Sequence[str], **kwargs):
    if not _switched_on():
        return _UNRECORDED
    with _declare_lock:
        existing = _declared.get(name)
        if existing is not None:
            if not isinstance(existing, kind):
                raise ValueError(f"{name} is already declared as a {type(existing).__name__}")
            return existing
        metric = kind(name.removesuffix("_total") if kind is Counter else name, documentation, list(labels),
                      **kwargs)
        _declared[name] = metric
        return metric


def counter(name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
    """A counter in the process's registry (``name`` ends in ``_total``); the same object when declared again."""
    return _declare(Counter, name, documentation, labels)


def gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
    """A gauge in the process's registry; the same object when declared again."""
    return _declare(Gauge, name, documentation, labels)


def histogram(name: str, documentation: str, labels: Sequence[str] = (),
              buckets: Sequence[float] = LATENCY_BUCKETS) -> Histogram:
    """A histogram (seconds) in the process's registry; the same object when declared again."""
    return _declare(Histogram, name, documentation, labels, buckets=tuple(buckets))


# -- the kernel's series ---------------------------------------------------------------------------------

RPC_REQUESTS = counter("upgestao_rpc_requests_total", "RPC requests served, by method and outcome.",
                       ["service", "method", "outcome", "error"])
RPC_DURATION = histogram("upgestao_rpc_request_duration_seconds", "Time to serve an RPC request.",
                         ["service", "method"])
RELAY_PUBLISHED = counter("upgestao_relay_published_total", "Outbox rows the broker confirmed.", ["service"])
RELAY_FAILURES = counter("upgestao_relay_publish_failures_total",
                         "Relay passes that failed (broker or database away); their rows go out later.", ["service"])
EVENTS_HANDLED = counter("upgestao_events_handled_total",
                         "Messages a consumer settled: handled, duplicate (already processed), retried, parked.",
                         ["service", "consumer", "outcome"])

CONSUMER_OUTCOMES = ("handled", "duplicate", "retried", "parked")


def consumer_outcomes(service: str, consumer: str) -> None:
    """Create a consumer's four series at 0 (so they exist before its first message)."""
    for outcome in CONSUMER_OUTCOMES:
        EVENTS_HANDLED.labels(service=service, consumer=consumer, outcome=outcome)


class BoundedNames:
    """Label values from code (exception class names, problem slugs), at most ``limit`` distinct ones, then
    ``other``."""

    IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
    SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}\Z")

    def __init__(self, limit: int = 40, pattern: re.Pattern = IDENTIFIER) -> None:
        """``pattern``: what a value must look like (else ``other``): an identifier, or :attr:`SLUG`."""
        self.limit = limit
        self.pattern = pattern
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, name: str) -> str:
        if name in self._seen:
            return name
        if not self.pattern.match(name):
            return "other"
        with self._lock:
            if len(self._seen) >= self.limit:
                return "other"
            self._seen.add(name)
        return name


error_label = BoundedNames()


def observe_rpc(service: str, method: str, seconds: float, error: BaseException | None) -> None:
    """One RPC served: its outcome and its time."""
    RPC_REQUESTS.labels(service=service, method=method, outcome="ok" if error is None else "error",
                        error="" if error is None else error_label(type(error).__name__)).inc()
    RPC_DURATION.labels(service=service, method=method).observe(seconds)


# -- scrape-time sources ---------------------------------------------------------------------------------

Source = Callable[[], Iterable[Metric]]


class Sources(Collector):
    """Every scrape-time source of the process, one collector in the registry: families of one name from
    several sources (two containers of a test process, say) are merged into one."""

    def __init__(self) -> None:
        self._sources: dict[int, Source] = {}
        self._lock = threading.Lock()
        self._next = 0

    def add(self, source: Source) -> Callable[[], None]:
        """Register ``source``; returns what removes it."""
        with self._lock:
            key = self._next
            self._next += 1
            self._sources[key] = source
        return lambda: self._sources.pop(key, None)

    def describe(self) -> list[Metric]:
        return []  # collected at scrape time only, never when registered

    def collect(self) -> Iterable[Metric]:
        merged: dict[str, Metric] = {}
        for source in list(self._sources.values()):
            try:
                families = list(source())
            except Exception as exc:  # a source that fails is skipped, the scrape still served
                log.warning("metrics.source_failed", source=getattr(source, "__name__", "source"),
                            error=type(exc).__name__)
                continue
            for family in families:
                if family.name in merged:
                    merged[family.name].samples.extend(family.samples)
                else:
                    merged[family.name] = family
        return list(merged.values())


SOURCES = Sources()
REGISTRY.register(SOURCES)


def add_source(source: Source) -> Callable[[], None]:
    """A scrape-time source of this process; returns what removes it."""
    return SOURCES.add(source)


def outbox_source(service: str, engine) -> Source:
    """``upgestao_outbox_depth`` and ``upgestao_outbox_oldest_unsent_age_seconds`` (relay lag; 0 when empty)
    of ``service``'s own outbox, one query a scrape."""
    import sqlalchemy as sa

    from .db import read_only
    from .schema import outbox

    query = sa.select(sa.func.count(), sa.func.min(outbox.c.created_at)).where(outbox.c.sent_at.is_(None))

    def outbox_metrics() -> list[Metric]:
        with engine.connect() as conn:  # read_only: on SQLite no write lock (the service's writers go on)
            depth, oldest = read_only(conn).execute(query).one()
        age = 0.0
        if oldest is not None:
            if isinstance(oldest, str):  # SQLite without a declared type's conversion
                oldest = datetime.fromisoformat(oldest)
            if oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=UTC)
            age = max(0.0, (datetime.now(UTC) - oldest).total_seconds())
        depth_family = GaugeMetricFamily("upgestao_outbox_depth", "Outbox rows not yet published.",
                                         labels=["service"])
        depth_family.add_metric([service], int(depth or 0))
        age_family = GaugeMetricFamily("upgestao_outbox_oldest_unsent_age_seconds",
                                       "Age of the oldest unpublished outbox row (relay lag); 0 when none.",
                                       labels=["service"])
        age_family.add_metric([service], age)
        return [depth_family, age_family]

    return outbox_metrics


def queue_depth_source(depths: Callable[[], Mapping[str, int | None]]) -> Source:
    """``upgestao_queue_messages{queue}`` from ``depths()`` (queue -> ready messages; ``None``: unknown,
    left out)."""

    def queue_metrics() -> list[Metric]:
        family = GaugeMetricFamily("upgestao_queue_messages", "Messages ready in a parking or catch-all queue.",
                                   labels=["queue"])
        for queue, count in sorted(depths().items()):
            if count is not None:
                family.add_metric([queue], count)
        return [family]

    return queue_metrics


class BrokerQueueDepths:
    """Ready messages of ``queues`` by a passive ``queue_declare`` each (its ``message_count``; no permission
    needed), on a connection of its own kept between scrapes (the relay's publishing channel stays
    untouched). Asked at most once per ``ttl_s``; a queue that does not exist yet is left out, a broker that
    cannot be reached leaves every queue out (the scrape is still served)."""

    def __init__(self, amqp_uri: str, queues: Sequence[str], *, ttl_s: float = 5.0,
                 timeout_s: float = 3.0) -> None:
        self.amqp_uri = amqp_uri
        self.queues = tuple(dict.fromkeys(queues))
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._connection = None
        self._answer: dict[str, int | None] = {}
        self._at: float | None = None
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, int | None]:
        import time

        with self._lock:
            now = time.monotonic()
            if self._at is None or now - self._at >= self.ttl_s:
                self._answer = self._ask()
                self._at = time.monotonic()
            return dict(self._answer)

    def _ask(self) -> dict[str, int | None]:
        from amqp.exceptions import NotFound
        from kombu import Connection

        try:
            if self._connection is None or not self._connection.connected:
                self.close()
                self._connection = Connection(self.amqp_uri, connect_timeout=self.timeout_s)
                self._connection.connect()
            depths: dict[str, int | None] = {}
            for queue in self.queues:
                channel = self._connection.channel()
                try:
                    _, count, _ = channel.queue_declare(queue, passive=True)
                    depths[queue] = int(count)
                except NotFound:  # not declared yet: nothing to say (the broker closed that channel)
                    depths[queue] = None
                finally:
                    if getattr(channel, "is_open", False):
                        channel.close()
            return depths
        except Exception as exc:  # the broker away: no queue figures this scrape
            log.warning("metrics.queue_depths_failed", error=type(exc).__name__)
            self.close()
            return {}

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.collect()
            except Exception:  # noqa: BLE001 - going away either way
                pass
            self._connection = None


# -- the listener ----------------------------------------------------------------------------------------

def exposition(registry=REGISTRY) -> bytes:
    """The registry in Prometheus text format."""
    return generate_latest(registry)


class MetricsServer(SidePortListener):
    """``GET /metrics`` on ``address`` in green threads of this process (eventlet: the ``run`` and the relay
    processes are monkey-patched); at most :data:`MAX_CONNECTIONS` scrapes at once, ``Connection: close``.
    Anything else is a 404 (another method a 405)."""

    def __init__(self, address: tuple[str, int], variable: str, registry=REGISTRY, *,
                 max_connections: int = MAX_CONNECTIONS, read_timeout_s: float = READ_TIMEOUT_S) -> None:
        super().__init__(address, variable, self.answer, "metrics", max_connections=max_connections,
                         read_timeout_s=read_timeout_s)
        self.registry = registry

    def answer(self, request: bytes) -> bytes:
        """The whole HTTP/1.1 response to a request's head."""
        line = request_line(request)
        if line is None:
            return _response(400, b"bad request\n")
        method, path = line
        if path != "/metrics":
            return _response(404, b"not found\n")
        if method not in ("GET", "HEAD"):
            return _response(405, b"method not allowed\n", extra="Allow: GET, HEAD\r\n")
        body = exposition(self.registry)
        return _response(200, body, content_type=CONTENT_TYPE_LATEST, head=method == "HEAD")


def _response(status: int, body: bytes, *, content_type: str = "text/plain; charset=utf-8", head: bool = False,
              extra: str = "") -> bytes:
    return http_response(status, body, content_type, head=head, extra=extra)


class serving:
    """The metrics listener for the life of a block (none without an address)."""

    def __init__(self, address: tuple[str, int] | None, variable: str) -> None:
        self.server = None if address is None else MetricsServer(address, variable)

    def __enter__(self) -> serving:
        if self.server is not None:
            self.server.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.server is not None:
            self.server.stop()
