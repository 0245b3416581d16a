"""pytest fixtures shared by every service's tests (``pytest_plugins``).

Tests run against the real RabbitMQ and PostgreSQL of the machine: each test
gets its own RabbitMQ vhost and its own PostgreSQL databases, all deleted
afterwards, so no queue or row of one test is seen by another.

    UPGESTAO_TEST_AMQP_URI   broker (default amqp://guest:guest@127.0.0.1:5672/)
    UPGESTAO_TEST_RABBIT_API management API (default http://guest:guest@127.0.0.1:15672)
    UPGESTAO_TEST_PG_URL     maintenance database (default postgresql+psycopg2://postgres@127.0.0.1:5432/postgres)
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
import requests
import sqlalchemy as sa

from .config import env_prefix
from .testing_tokens import test_jwks_json

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
    _api("PUT", f"/api/vhosts/{quote(name, safe='')}")
    user = urlsplit(AMQP_BASE).username or "guest"
    _api("PUT", f"/api/permissions/{quote(name, safe='')}/{user}",
         json={"configure": ".*", "write": ".*", "read": ".*"})
    parts = urlsplit(AMQP_BASE)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(name, safe=""), "", ""))


def delete_vhost(name: str) -> None:
    _api("DELETE", f"/api/vhosts/{quote(name, safe='')}")


def create_database(name: str) -> str:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return str(sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False))


def drop_database(name: str) -> None:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture
def amqp_vhost() -> Iterator[str]:
    name = f"upgestao-test-{uuid.uuid4().hex[:10]}"
    create_vhost(name)
    yield name
    delete_vhost(name)


@pytest.fixture
def amqp_uri(amqp_vhost: str) -> str:
    parts = urlsplit(AMQP_BASE)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(amqp_vhost, safe=""), "", ""))


@pytest.fixture
def database_factory() -> Iterator:
    """``make(hint) -> url``: a fresh PostgreSQL database, dropped after the test."""
    made: list[str] = []

    def make(hint: str = "db") -> str:
        name = f"t_{hint.replace('-', '_')}_{uuid.uuid4().hex[:10]}"
        url = create_database(name)
        made.append(name)
        return url

    yield make
    for name in made:
        drop_database(name)


@pytest.fixture
def service_env(monkeypatch, tmp_path, amqp_uri) -> dict[str, str]:
    """The environment a service sees in tests (short retry delays)."""
    env = {
        "UPGESTAO_ENV": "test",
        "UPGESTAO_DATA_DIR": str(tmp_path / "var"),
        "AMQP_URI": amqp_uri,
        "UPGESTAO_RETRY_DELAYS_MS": "100,200",
        # identity's keys pinned to the tests' signing key (testing_tokens.acting_as signs with it)
        "UPGESTAO_IDENTITY_JWKS": test_jwks_json(),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def run_service(service_env, database_factory, monkeypatch) -> Iterator:
    """Start a nameko service class on a fresh, migrated database; returns an RPC proxy."""
    from nameko.containers import ServiceContainer
    from nameko.standalone.rpc import ServiceRpcProxy

    from .migrations import upgrade

    started: list = []

    def run(service_cls, migrations, extra_config: dict | None = None, database_url: str | None = None):
        """``migrations``: an Alembic location (``pkg:migrations``) or a callable(url)."""
        url = database_url or database_factory(service_cls.name)
        monkeypatch.setenv(f"{env_prefix(service_cls.name)}_DATABASE_URL", url)
        if database_url is None:
            migrations(url) if callable(migrations) else upgrade(migrations, url)
        config = {"AMQP_URI": service_env["AMQP_URI"], "serializer": "json", **(extra_config or {})}
        container = ServiceContainer(service_cls, config)
        container.start()
        proxy_ctx = ServiceRpcProxy(service_cls.name, config, timeout=10)
        proxy = proxy_ctx.start()
        started.append((container, proxy_ctx))
        return proxy

    run.started = started  # (container, proxy context) pairs: a test may stop a service early
    yield run
    for container, proxy_ctx in reversed(started):
        proxy_ctx.stop()
        container.stop()
