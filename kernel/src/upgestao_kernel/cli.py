"""The command line every service shares: ``python -m upgestao_<svc> <command>``.

    run                 start the nameko service (validates configuration first)
    relay               publish the outbox to RabbitMQ until SIGINT/SIGTERM
    migrate             apply the Alembic migrations
    rebuild             rebuild every read model from the event log
    parked list         show parked messages of this service's handlers
    parked replay       put parked messages back on their queue
    rotate-master-key   re-wrap every data key under the current master key
    check-config        validate the environment (everything ``run`` validates) and exit
    probe livez|readyz  ask this process's probe listener (UPGESTAO_PROBE_ADDRESS): exit 0 on 200, else 1

``run`` and ``relay`` serve ``/livez`` and ``/readyz`` on ``UPGESTAO_PROBE_ADDRESS`` when it is set
(:mod:`upgestao_kernel.probes`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .config import ConfigError, Settings, load_settings
from .logging import configure_logging, get_logger
from .metrics import check_addresses as check_metrics_addresses
from .nameko_ext.readiness import ServiceReadiness
from .probes import ProbeServer, Readiness, RelayReadiness, probe, probe_address
from .projections import Projection
from .tracing import configure_tracing, tracing_endpoint
from .tracing import enabled as tracing_enabled

log = get_logger(__name__)
# the exit status of a process stopped by its configuration: restarting it cannot help (platformctl stops)
CONFIG_ERROR_EXIT = 2


@dataclass(frozen=True)
class ServiceCommand:
    """A command of one service only (``python -m upgestao_identity create-admin``)."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[..., int]  # (definition, settings, keys, args) -> exit status


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    service_class: str  # "package.module:Class"
    migrations: str  # "package:migrations"
    projections: Callable[[], Sequence[Projection]] = field(default=lambda: ())
    publishes_events: bool = True
    # keeps personal data (through the vault): only then does ``run`` load the master and blind-index keys
    # (its Database says the same: ``Database(personal_data=True)``)
    holds_personal_data: bool = False
    # concurrent workers (``<SERVICE>_MAX_WORKERS`` overrides): an HTTP front
    # door holds one per request in flight, so it wants more than a backend.
    default_max_workers: int = 10
    nameko_config: Callable[[Settings], dict] = field(default=lambda settings: {})
    commands: Mapping[str, ServiceCommand] = field(default_factory=dict)
    # more publishing loops for the relay process, beside the outbox relay (privacy: the audit stream);
    # each is called with the stop event and returns when it is set
    relay_loops: Callable[[Settings], Sequence[Callable[[threading.Event], None]]] = field(
        default=lambda settings: ())
    # validates the service's own settings (raises ``ConfigError``): the same code its ``run`` uses,
    # called by ``run`` and by ``check-config`` before anything starts
    check_config: Callable[[Settings], None] = field(default=lambda settings: None)
    # the outbox relay's poll interval (ms) unless UPGESTAO_RELAY_POLL_MS says otherwise (None: the kernel's
    # 50 ms, 4x that when idle): a service whose events a person waits for (messaging's live push) polls
    # more often, the outbox staying the only path to the broker
    relay_poll_ms: int | None = None
    # the queues its batch consumers take (``BatchConsumer``: privacy's audit ingest, the integrations'
    # fan-out), beside its reliable handlers': their ``.parked`` queues' depth is a metric of its relay
    batch_queues: Callable[[], Sequence[str]] = field(default=lambda: ())

    def load_class(self) -> type:
        module, _, attr = self.service_class.partition(":")
        return getattr(importlib.import_module(module), attr)

    def handler_queues(self) -> list[str]:
        from .nameko_ext.entrypoints import ReliableEventHandler

        cls = self.load_class()
        queues = []
        for attr in dir(cls):
            for ext in getattr(getattr(cls, attr, None), "nameko_entrypoints", ()):
                if isinstance(ext, ReliableEventHandler):
                    queues.append(f"{self.name}.{attr}")
        return sorted(queues)

    def parking_queues(self) -> list[str]:
        """Every parking queue of the service's consumers (``<queue>.parked``)."""
        from .topology import parking_queue_name

        return sorted(parking_queue_name(q) for q in {*self.handler_queues(), *self.batch_queues()})


class LazyKeys:
    """The vault's keys ``(keyring, blind_key)``, read from the environment only when a command uses them:
    the relay, migrations and a service without personal data never hold them (issue 11, finding 9)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._keys: tuple | None = None

    def __iter__(self):
        if self._keys is None:
            from .vault import load_keys

            self._keys = tuple(load_keys(self._settings, os.environ))
        return iter(self._keys)


def system_units_of_work(definition: ServiceDefinition, settings: Settings, keys) -> tuple[Callable, object]:
    """For a command: ``(make_unit_of_work, engine)``, the system acting, personal data through the vault
    (audited like any other access). Dispose of the engine when done."""
    from .context import system_context
    from .db import create_engine
    from .unit_of_work import UnitOfWork
    from .vault import Vault

    engine = create_engine(settings.database_url)
    vault = Vault(*keys) if definition.holds_personal_data else None
    projections = tuple(definition.projections())

    def make() -> UnitOfWork:
        return UnitOfWork(engine, definition.name, system_context(), projections, vault=vault)

    return make, engine


def main(definition: ServiceDefinition, argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"upgestao-{definition.name}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run")
    sub.add_parser("relay")
    sub.add_parser("migrate")
    sub.add_parser("rebuild")
    sub.add_parser("check-config")
    sub.add_parser("rotate-master-key")
    sub.add_parser("probe").add_argument("path", choices=("livez", "readyz"))
    parked = sub.add_parser("parked")
    parked.add_argument("action", choices=("list", "replay"))
    parked.add_argument("--queue", help="handler queue (default: all of this service's handlers)")
    parked.add_argument("--message-id", action="append", help="replay only these (repeatable)")
    for name, command in definition.commands.items():
        command.configure(sub.add_parser(name, help=command.help))
    args = parser.parse_args(argv)

    try:
        settings = load_settings(definition.name, default_max_workers=definition.default_max_workers)
        # traces (OTEL_EXPORTER_OTLP_ENDPOINT set): the daemons export them; check-config checks the setting
        traced = args.command in ("run", "relay") and configure_tracing(definition.name, args.command, os.environ)
        if args.command == "check-config":
            tracing_endpoint(os.environ)
        # daemons log to stdout; a command's stdout is its output (JSON Lines, say): its logs go to stderr
        configure_logging(definition.name, settings.log_level,
                          sys.stdout if args.command in ("run", "relay") else sys.stderr, trace_ids=traced)
        # the probe listener's address: a bad one stops the process before anything starts
        probe_at = probe_address(os.environ) if args.command in ("run", "relay", "check-config", "probe") else None
        if args.command in ("run", "relay", "check-config"):  # the metrics listeners' addresses, the same way
            check_metrics_addresses(definition.name, os.environ)
        if args.command == "probe" and probe_at is None:
            raise ConfigError("UPGESTAO_PROBE_ADDRESS", "not set: this process serves no probes")
        keys = LazyKeys(settings)
        if definition.holds_personal_data and args.command in ("run", "check-config"):
            tuple(keys)  # a service that keeps personal data checks its keys before it starts
        nameko_config = {**settings.nameko_config(), **definition.nameko_config(settings)}
        if args.command in ("run", "check-config"):
            from .jwks import pinned_jwks

            pinned_jwks(os.environ, production=settings.production)  # who verifies tokens checks its pin first
            definition.check_config(settings)
    except ConfigError as exc:
        print(f"upgestao-{definition.name}: {exc}", file=sys.stderr)
        return CONFIG_ERROR_EXIT

    command = args.command.replace("-", "_")
    if command == "run":
        return _run(definition, settings, nameko_config, probe_at)
    if command == "relay":
        return _relay(definition, settings, probe_at)
    if command == "probe":
        return _probe(probe_at, args.path)
    if args.command in definition.commands:
        try:
            return definition.commands[args.command].run(definition, settings, keys, args)
        except ConfigError as exc:
            print(f"upgestao-{definition.name}: {exc}", file=sys.stderr)
            return CONFIG_ERROR_EXIT
    return COMMANDS[command](definition, settings, keys, args)


def _run(definition: ServiceDefinition, settings: Settings, nameko_config: dict,
         probe_at: tuple[str, int] | None = None) -> int:
    if settings.database_url.startswith("postgresql"):
        from .db import green_postgres

        green_postgres()
    readiness = ServiceReadiness()
    if tracing_enabled():  # a span for every worker and every RPC call (off: nameko untouched)
        from .nameko_ext.tracing import install

        install()
    # nameko configures stdlib logging only when told to; ours is already JSON.
    try:
        with _probes(probe_at, readiness):
            _run_nameko(definition.load_class(), nameko_config, readiness)
    except ConfigError as exc:  # found while the container set up: exit 2, the status a supervisor never retries
        print(f"upgestao-{definition.name}: {exc}", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    return 0


def _run_nameko(service_class: type, nameko_config: dict, readiness: ServiceReadiness) -> None:
    """``nameko.cli.run.run`` for one service, the runner handed to the readiness probe once started."""
    import errno

    import eventlet
    from nameko.runners import ServiceRunner

    runner = ServiceRunner(nameko_config)
    runner.add_service(service_class)
    # a signal handler runs in the main loop and cannot use eventlet primitives: stop in a green thread
    signal.signal(signal.SIGTERM, lambda *_: eventlet.spawn_n(runner.stop))
    runner.start()
    readiness.runner = runner
    waiting = eventlet.spawn(runner.wait)
    while True:
        try:
            waiting.wait()
            return
        except OSError as exc:  # a signal landing while the hub waits on a socket: keep waiting
            if exc.errno != errno.EINTR:
                raise
        except KeyboardInterrupt:
            try:
                runner.stop()
            except KeyboardInterrupt:
                runner.kill()


class _probes:
    """The probe listener for the life of a command (none without an address)."""

    def __init__(self, address: tuple[str, int] | None, readiness: Readiness) -> None:
        self._server = None if address is None else ProbeServer(address, readiness)

    def __enter__(self) -> None:
        if self._server is not None:
            self._server.start()

    def __exit__(self, *exc_info) -> None:
        if self._server is not None:
            self._server.stop()


def _probe(address: tuple[str, int], path: str) -> int:
    try:
        status, body = probe(address, f"/{path}")
    except OSError as exc:
        print(f"{path}: no answer ({type(exc).__name__})", file=sys.stderr)
        return 1
    print(f"{path}: {status} {body}")
    return 0 if status == 200 else 1


def relay_poll_ms(definition: ServiceDefinition, settings: Settings, environ: Mapping[str, str]) -> int:
    """The relay's poll interval: ``UPGESTAO_RELAY_POLL_MS`` when set, else the service's own, else the kernel's."""
    if environ.get("UPGESTAO_RELAY_POLL_MS") or definition.relay_poll_ms is None:
        return settings.relay_poll_ms
    return definition.relay_poll_ms


def _relay(definition: ServiceDefinition, settings: Settings, probe_at: tuple[str, int] | None = None) -> int:
    from . import metrics
    from .db import create_engine
    from .relay import OutboxRelay
    from .topology import UNROUTED

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    relay = OutboxRelay(
        create_engine(settings.database_url, pool_size=2),
        settings.amqp_uri,
        services=[definition.name] if definition.publishes_events else [],
        batch_size=settings.relay_batch_size,
        poll_interval_s=relay_poll_ms(definition, settings, os.environ) / 1000,
        crash_after_confirm=settings.relay_crash_after_confirm,
        metrics_service=definition.name,
    )
    queue_depths = metrics.BrokerQueueDepths(settings.amqp_uri, [*definition.parking_queues(), UNROUTED])
    remove_source = metrics.add_source(metrics.queue_depth_source(queue_depths))
    loops = [threading.Thread(target=loop, args=(stop,), name=getattr(loop, "__name__", "relay-loop"), daemon=True)
             for loop in definition.relay_loops(settings)]
    try:
        with _probes(probe_at, RelayReadiness(relay, loops=loops)), \
                metrics.serving(metrics.metrics_address(definition.name, os.environ, relay=True),
                                metrics.metrics_variable(definition.name, relay=True)):
            for thread in loops:
                thread.start()
            relay.run(stop)
    except ConfigError as exc:
        print(f"upgestao-{definition.name}: {exc}", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    finally:
        remove_source()
        queue_depths.close()
    for thread in loops:
        thread.join(timeout=15)
    return 0


def _migrate(definition: ServiceDefinition, settings: Settings, keys, args) -> int:
    from .migrations import upgrade

    upgrade(definition.migrations, settings.database_url)
    log.info("migrations.applied", database=settings.database_url.split("://", 1)[0])
    return 0


def _rebuild(definition: ServiceDefinition, settings: Settings, keys, args) -> int:
    from .db import create_engine
    from .projections import rebuild

    count = rebuild(create_engine(settings.database_url), definition.projections())
    print(f"rebuilt read models of {definition.name} from {count} events")
    return 0


def _check_config(definition: ServiceDefinition, settings: Settings, keys, args) -> int:
    print(f"{definition.name}: configuration ok ({settings.env})")
    return 0


def _rotate_master_key(definition: ServiceDefinition, settings: Settings, keys, args) -> int:
    from .db import create_engine
    from .vault import rotate_master_key

    keyring, _ = keys
    count = rotate_master_key(create_engine(settings.database_url), keyring, keyring)
    print(f"re-wrapped {count} data keys of {definition.name} under the current master key")
    return 0


def _parked(definition: ServiceDefinition, settings: Settings, keys, args) -> int:
    from .parking import list_parked, replay_parked

    queues = [args.queue] if args.queue else definition.handler_queues()
    for queue in queues:
        if args.action == "list":
            for m in list_parked(settings.amqp_uri, queue):
                print(f"{queue}\t{m.message_id}\t{m.event_type}\t{m.attempts}\t{m.parked_at}\t{m.error}")
        else:
            n = replay_parked(settings.amqp_uri, queue, args.message_id)
            print(f"{queue}: replayed {n} parked messages")
    return 0


COMMANDS = {
    "migrate": _migrate,
    "rebuild": _rebuild,
    "check_config": _check_config,
    "rotate_master_key": _rotate_master_key,
    "parked": _parked,
}
