"""pytest fixtures shared by every service's tests (``pytest_plugins``).

Tests run against the real RabbitMQ and PostgreSQL of the machine: each test
gets its own RabbitMQ vhost and its own PostgreSQL databases, all deleted
afterwards, so no queue or row of one test is seen by another.

    UPGESTAO_TEST_AMQP_URI   broker (default amqp://guest:guest@127.0.0.1:5672/)
    UPGESTAO_TEST_RABBIT_API management API (default http://guest:guest@127.0.0.1:15672)
    UPGESTAO_TEST_PG_URL     maintenance database (default postgresql+psycopg2://postgres@127.0.0.1:5432/postgres)
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import queue
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pytest
import requests
import sqlalchemy as sa

from .broker_identity import broker_user, platform_prefix
from .broker_permissions import CONSUMES, UNROUTED_POLICY, UNROUTED_POLICY_NAME, permissions_for
from .config import env_prefix
from .testing_tokens import token_jwks_json

AMQP_BASE = os.environ.get("UPGESTAO_TEST_AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
RABBIT_API = os.environ.get("UPGESTAO_TEST_RABBIT_API", "http://guest:guest@127.0.0.1:15672")
PG_ADMIN_URL = os.environ.get("UPGESTAO_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def _api(method: str, path: str, **kwargs) -> requests.Response:
    parts = urlsplit(RABBIT_API)
    base = urlunsplit((parts.scheme, parts.hostname + (f":{parts.port}" if parts.port else ""), "", "", ""))
    response = requests.request(method, base + path, auth=(parts.username or "guest", parts.password or "guest"),
                                timeout=10, **kwargs)
    response.raise_for_status()
    return response


def create_vhost(name: str) -> str:
    """A fresh vhost, provisioned as the platform's is: the administrator's permissions, the
    unrouted catch-all and its bounding policy."""
    _api("PUT", f"/api/vhosts/{quote(name, safe='')}")
    user = urlsplit(AMQP_BASE).username or "guest"
    _api("PUT", f"/api/permissions/{quote(name, safe='')}/{user}",
         json={"configure": ".*", "write": ".*", "read": ".*"})
    parts = urlsplit(AMQP_BASE)
    uri = urlunsplit((parts.scheme, parts.netloc, "/" + quote(name, safe=""), "", ""))
    provision_shared(name, uri)
    return uri


def provision_shared(vhost: str, admin_uri: str) -> None:
    """What only an administrator declares: ``upgestao.unrouted`` (exchange, queue) and its policy, ``audit``."""
    from kombu import Connection

    from .topology import declare_shared

    _api("PUT", f"/api/policies/{quote(vhost, safe='')}/{UNROUTED_POLICY_NAME}", json=dict(UNROUTED_POLICY))
    with Connection(admin_uri) as conn:
        declare_shared(conn.default_channel)


_PASSWORDS: dict[str, str] = {}  # broker user -> password, for the users this process created


def service_amqp_uri(amqp_uri: str, service: str, consumes: tuple[str, ...] | None = None) -> str:
    """``amqp_uri`` (an administrator's, on a test vhost) with ``service``'s own broker user, created
    (once per vhost) with its permissions from the table (``consumes``: the services whose events it
    binds from, default the table's)."""
    parts = urlsplit(amqp_uri)
    vhost = unquote(parts.path[1:]) or "/"
    user = broker_user(service, vhost)
    if user not in _PASSWORDS:
        password = secrets.token_urlsafe(24)
        grants = permissions_for(service, vhost, consumes=consumes)
        _api("PUT", f"/api/users/{quote(user, safe='')}", json={"password": password, "tags": ""})
        path = f"{quote(vhost, safe='')}/{quote(user, safe='')}"
        _api("PUT", f"/api/permissions/{path}",
             json={"configure": grants.configure, "write": grants.write, "read": grants.read})
        for topic in grants.topics:
            _api("PUT", f"/api/topic-permissions/{path}",
                 json={"exchange": topic.exchange, "write": topic.write, "read": topic.read})
        _PASSWORDS[user] = password
    netloc = f"{quote(user, safe='')}:{quote(_PASSWORDS[user], safe='')}@{parts.hostname}" + (
        f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def delete_vhost(name: str) -> None:
    """The vhost and the broker users of its platform (``<vhost>.<service>``)."""
    _api("DELETE", f"/api/vhosts/{quote(name, safe='')}")
    prefix = platform_prefix(name) + "."
    if prefix == "upgestao.":  # never the default platform's users
        return
    for user in _api("GET", "/api/users").json():
        if user["name"].startswith(prefix):
            _api("DELETE", f"/api/users/{quote(user['name'], safe='')}")
            _PASSWORDS.pop(user["name"], None)


def event_sources(service_cls) -> tuple[str, ...]:
    """The services whose events ``service_cls``'s reliable handlers consume."""
    sources = []
    for _, method in inspect.getmembers(service_cls, callable):
        for entrypoint in getattr(method, "nameko_entrypoints", ()):
            source = getattr(entrypoint, "source_service", None)
            if source and source not in sources:
                sources.append(source)
    return tuple(sources)


def create_database(name: str, template: str | None = None) -> str:
    """A new database ``name`` (a copy of ``template`` if given); its URL."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    admin.dispose()
    return str(sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False))


_TEMPLATES: dict[tuple[str, ...], str] = {}  # (migrations, their environment) -> a migrated template database


def migrated_database(name: str, script_location: str) -> str:
    """A new database ``name`` at the head of ``script_location``'s migrations; its URL.

    A copy (``CREATE DATABASE … TEMPLATE``) of a database migrated once per session, instead of every
    migration run again for every test (alembic's 0.2 to 0.5 s a test); the copy is the same schema and
    rows, ``alembic_version`` included. Migrations are themselves tested from an empty database
    (tests/test_migrations.py, every platform's ``migrate``). A migration that reads a
    ``*_MIGRATION_DATABASE_URL`` gets one template per value of those. The templates are dropped at the
    end of the session.
    """
    from .migrations import upgrade

    key = (script_location, *sorted(f"{k}={v}" for k, v in os.environ.items() if k.endswith("_MIGRATION_DATABASE_URL")))
    template = _TEMPLATES.get(key)
    if template is None:
        template = f"t_template_{script_location.partition(':')[0]}_{uuid.uuid4().hex[:10]}"
        upgrade(script_location, create_database(template))
        _TEMPLATES[key] = template
    return create_database(name, template=template)


@dataclass
class IsolatedService:
    """What :func:`isolated_service` made: a vhost, a migrated database, and the environment (``env``: set more
    with it, undone with the rest)."""

    vhost: str
    amqp_uri: str
    database_url: str
    env: pytest.MonkeyPatch


@contextlib.contextmanager
def isolated_service(service: str, script_location: str, data_dir: os.PathLike | str,
                     label: str) -> Iterator[IsolatedService]:
    """A vhost and a migrated database of their own (named after ``label``) and the environment a container of
    ``service`` started in this process reads (``UPGESTAO_ENV=test``, ``UPGESTAO_DATA_DIR``, ``AMQP_URI``, its
    ``*_DATABASE_URL``), for a module's fixture that runs containers; afterwards the environment is undone, the
    database dropped and the vhost deleted (stop the containers inside the block)."""
    tag = uuid.uuid4().hex[:10]
    vhost = f"upgestao-{label}-{tag}"
    database = f"t_{service}_{label.replace('-', '_')}_{tag}"
    amqp_uri = create_vhost(vhost)
    env = pytest.MonkeyPatch()
    try:
        database_url = migrated_database(database, script_location)
        env.setenv("UPGESTAO_ENV", "test")
        env.setenv("UPGESTAO_DATA_DIR", str(data_dir))
        env.setenv("AMQP_URI", amqp_uri)
        env.setenv(f"{env_prefix(service)}_DATABASE_URL", database_url)
        yield IsolatedService(vhost, amqp_uri, database_url, env)
    finally:
        env.undo()
        drop_database(database)
        delete_vhost(vhost)


def drop_database(name: str) -> None:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class BackgroundCleanup:
    """Teardown work no later test waits for: dropping a finished test's databases, deleting its vhost.

    ``DROP DATABASE`` makes PostgreSQL checkpoint, and a vhost's deletion (its users listed and deleted
    one by one) is several calls of the management API: done in each test's teardown, every test waited
    for them (0.1 s on an idle machine, seconds on a loaded one). Here one worker does them in the order
    given while the next tests run; names are unique, so no test sees another's leftovers. At the end of
    the session every job has run: one that failed (a test had patched what it uses, the server was
    briefly away) is tried once more then, and one that fails again fails the session, as it failed the
    test's teardown before.
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self.failed: list[tuple[str, Callable[[], None]]] = []

    def submit(self, what: str, job: Callable[[], None]) -> None:
        """Run ``job`` (``what``: its description) in the background, after the jobs submitted before."""
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="test-cleanup", daemon=True)
                self._worker.start()
            self._jobs.put((what, job))

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            what, job = item
            try:
                job()
            except Exception:  # noqa: BLE001 - kept, tried again at the end of the session
                self.failed.append((what, job))

    def finish(self) -> list[str]:
        """Wait for every job; try the failed ones again, here; the descriptions of those that failed twice."""
        with self._lock:
            worker, self._worker = self._worker, None
            if worker is not None:
                self._jobs.put(None)
        if worker is not None:
            worker.join()
        failed, self.failed = self.failed, []
        problems = []
        for what, job in failed:
            try:
                job()
            except Exception as exc:  # noqa: BLE001 - reported
                problems.append(f"{what}: {type(exc).__name__}: {exc}")
        return problems


cleanup = BackgroundCleanup()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The background cleanup of the session's tests is done before pytest says how it went."""
    for template in _TEMPLATES.values():
        cleanup.submit(f"drop template database {template}", functools.partial(drop_database, template))
    _TEMPLATES.clear()
    problems = cleanup.finish()
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        for problem in problems:
            if reporter is not None:
                reporter.write_line(f"test cleanup failed: {problem}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def wait_for_a_lock_waiter(engine: sa.Engine, what: str = "the other session", timeout_s: float = 10.0) -> None:
    """Until another session of ``engine``'s PostgreSQL database waits for a lock (``pg_stat_activity``), for a
    test that holds a lock and must know the other side reached it (not a sleep: on a loaded machine the other
    side comes later). Each look runs in a transaction of its own: PostgreSQL keeps a transaction's first view of
    pg_stat_activity until it ends, so looking again in the same one never sees a waiter that came later."""
    deadline = time.monotonic() + timeout_s
    with engine.connect() as conn:
        while True:
            waiting = conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'")).scalar()
            conn.rollback()  # the next look sees the sessions as they are then
            if waiting:
                return
            assert time.monotonic() < deadline, f"{what} never waited for the lock"
            time.sleep(0.02)


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture(autouse=True, scope="session")
def prompt_container_stop() -> Iterator[None]:
    """Every in-process container of the session stops within ``CONSUMER_SAFETY_INTERVAL_S`` (0.1 s, not
    nameko's 2 s), a test's plain nameko service too: what the kernel installs in every service
    (``nameko_ext.reconnect``), for whatever a test imported or not."""
    from .nameko_ext.reconnect import install_fast_reconnect

    install_fast_reconnect()
    yield


@pytest.fixture
def amqp_vhost() -> Iterator[str]:
    name = f"upgestao-test-{uuid.uuid4().hex[:10]}"
    create_vhost(name)
    yield name
    cleanup.submit(f"delete vhost {name}", functools.partial(delete_vhost, name))


@pytest.fixture
def amqp_uri(amqp_vhost: str) -> str:
    parts = urlsplit(AMQP_BASE)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(amqp_vhost, safe=""), "", ""))


@pytest.fixture
def database_factory() -> Iterator:
    """``make(hint, migrations=None) -> url``: a fresh PostgreSQL database (migrated to the head of
    ``migrations`` if given: see :func:`migrated_database`), dropped after the test (in the background)."""
    made: list[str] = []

    def make(hint: str = "db", migrations: str | None = None) -> str:
        """``migrations``: an Alembic location (``pkg:migrations``): the database is at its head."""
        name = f"t_{hint.replace('-', '_')}_{uuid.uuid4().hex[:10]}"
        url = migrated_database(name, migrations) if migrations else create_database(name)
        made.append(name)
        return url

    yield make
    for name in made:
        cleanup.submit(f"drop database {name}", functools.partial(drop_database, name))


@pytest.fixture
def service_env(monkeypatch, tmp_path, amqp_uri) -> dict[str, str]:
    """The environment a service sees in tests (short retry delays)."""
    env = {
        "UPGESTAO_ENV": "test",
        "UPGESTAO_DATA_DIR": str(tmp_path / "var"),
        "AMQP_URI": amqp_uri,
        "UPGESTAO_RETRY_DELAYS_MS": "100,200",
        # identity's keys pinned to the tests' signing key (testing_tokens.acting_as signs with it)
        "UPGESTAO_IDENTITY_JWKS": token_jwks_json(),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def run_service(service_env, database_factory, monkeypatch) -> Iterator:
    """Start a nameko service class on a fresh, migrated database; returns an RPC proxy."""
    from nameko.containers import ServiceContainer
    from nameko.standalone.rpc import ServiceRpcProxy

    started: list = []

    def run(service_cls, migrations, extra_config: dict | None = None, database_url: str | None = None):
        """``migrations``: an Alembic location (``pkg:migrations``: the database is a copy of the session's
        migrated template) or a callable(url)."""
        if database_url is not None:
            url = database_url
        elif callable(migrations):
            url = database_factory(service_cls.name)
            migrations(url)
        else:  # a copy of the session's migrated template
            url = database_factory(service_cls.name, migrations)
        monkeypatch.setenv(f"{env_prefix(service_cls.name)}_DATABASE_URL", url)
        admin_config = {"AMQP_URI": service_env["AMQP_URI"], "serializer": "json", **(extra_config or {})}
        config = dict(admin_config)
        try:  # the service as its own broker user; a test's service whose name is no service name: as admin
            sources = (*CONSUMES.get(service_cls.name, ()), *event_sources(service_cls))
            config["AMQP_URI"] = service_amqp_uri(admin_config["AMQP_URI"], service_cls.name, consumes=sources)
        except ValueError:
            pass
        container = ServiceContainer(service_cls, config)
        container.start()
        proxy_ctx = ServiceRpcProxy(service_cls.name, admin_config, timeout=10)
        proxy = proxy_ctx.start()
        started.append((container, proxy_ctx))
        return proxy

    run.started = started  # (container, proxy context) pairs: a test may stop a service early
    yield run
    for container, proxy_ctx in reversed(started):
        proxy_ctx.stop()
        container.stop()
