"""End-to-end fixtures: the whole platform as processes, on real PostgreSQL and
RabbitMQ, started once per test session in its own vhost and databases."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path

import pytest
import requests
from e2e_api import E2E_IDENTITY_ENV
from upgestao_kernel.config import env_prefix
from upgestao_kernel.testing import create_database, create_vhost, delete_vhost, drop_database

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("identity", "messaging", "privacy", "notifier", "gateway")


def _platform_module():
    spec = importlib.util.spec_from_file_location("upgestao_platform", ROOT / "scripts" / "upgestao_platform.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["upgestao_platform"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def platform_module():
    """``scripts/upgestao_platform.py``: ``Platform``, ``free_address``, ``PlatformError``."""
    return _platform_module()


@pytest.fixture(scope="session")
def platform(tmp_path_factory, platform_module):
    module = platform_module
    tag = uuid.uuid4().hex[:8]
    vhost = f"upgestao-e2e-{tag}"
    amqp_uri = create_vhost(vhost)
    databases = {name: f"t_e2e_{name}_{tag}" for name in SERVICES}
    env = {"UPGESTAO_ENV": "test", "UPGESTAO_RETRY_DELAYS_MS": "100,200", **E2E_IDENTITY_ENV}
    urls = {}
    for service, database in databases.items():
        urls[service] = env[f"{env_prefix(service)}_DATABASE_URL"] = create_database(database)
    running = module.Platform(
        data_dir=tmp_path_factory.mktemp("platform"),
        amqp_uri=amqp_uri,
        http_address=module.free_address(),
        env=env,
    )
    running.database_urls = urls
    running.vhost = vhost
    try:
        running.start(timeout=90)
        yield running
    finally:
        running.stop()
        for database in databases.values():
            drop_database(database)
        delete_vhost(vhost)


@pytest.fixture
def http(platform):
    session = requests.Session()
    session.base_url = platform.url
    yield session
    session.close()
