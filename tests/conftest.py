"""End-to-end fixtures: the whole platform as processes, on real PostgreSQL and
RabbitMQ, started once per test session in its own vhost and databases."""

from __future__ import annotations

import pytest
import requests
from e2e_api import E2E_IDENTITY_ENV
from e2e_platform import load_script, own_platform


@pytest.fixture(scope="session")
def platform_module():
    """``scripts/upgestao_platform.py``: ``Platform``, ``free_address``, ``PlatformError``."""
    return load_script("scripts/upgestao_platform.py", "upgestao_platform")


@pytest.fixture(scope="session")
def platform(tmp_path_factory, platform_module):
    with own_platform(platform_module, tmp_path_factory.mktemp("platform"), "e2e", E2E_IDENTITY_ENV) as running:
        yield running


@pytest.fixture
def http(platform):
    session = requests.Session()
    session.base_url = platform.url
    yield session
    session.close()
