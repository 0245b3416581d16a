"""End-to-end fixtures: the whole platform as processes, on real PostgreSQL and
RabbitMQ, started once per test session in its own vhost and databases."""

from __future__ import annotations

import pytest
import requests
from e2e_api import E2E_IDENTITY_ENV
from e2e_platform import load_script, own_platform
from otlp_collector import OtlpCollector


@pytest.fixture(scope="session")
def platform_module():
    """``scripts/upgestao_platform.py``: ``Platform``, ``free_address``, ``PlatformError``."""
    return load_script("scripts/upgestao_platform.py", "upgestao_platform")


@pytest.fixture(scope="session")
def otlp_collector():
    """The session platform's trace collector (``tests/otlp_collector.py``), up before it and after it."""
    with OtlpCollector() as collector:
        yield collector


@pytest.fixture(scope="session")
def platform(tmp_path_factory, platform_module, otlp_collector):
    # Tracing is on for the session platform (issue 18): its processes export every span to the in-process
    # collector, which tests/test_tracing_e2e.py reads; a platform of its own would cost the suite a whole
    # start (the gateway is ready only once every service answers), and every other e2e test now runs the
    # traced code paths. Spans are batched every 200 ms (the SDK's default is 5 s) so a test waits little.
    env = {**E2E_IDENTITY_ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_collector.endpoint,
           "OTEL_BSP_SCHEDULE_DELAY": "200"}
    with own_platform(platform_module, tmp_path_factory.mktemp("platform"), "e2e", env) as running:
        yield running


@pytest.fixture
def http(platform):
    session = requests.Session()
    session.base_url = platform.url
    yield session
    session.close()
