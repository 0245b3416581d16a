"""Two platforms on one machine (issue 2 §4): a second one with no configuration
but its own data directory, vhost and port — embedded SQLite defaults — runs
beside the first without either noticing; a platform on a data directory
already in use is refused."""

from __future__ import annotations

import uuid

import pytest
import requests
from upgestao_kernel.service_registry import service_definitions
from upgestao_kernel.testing import create_vhost, delete_vhost

pytestmark = pytest.mark.e2e


def test_second_platform_on_sqlite_defaults_does_not_interfere(platform, platform_module, tmp_path):
    module = platform_module
    vhost = f"upgestao-e2e-second-{uuid.uuid4().hex[:8]}"
    second = module.Platform(data_dir=tmp_path / "second", amqp_uri=create_vhost(vhost),
                             http_address=module.free_address())
    try:
        second.start(timeout=90)
        for running in (platform, second):
            ready = requests.get(running.url + "/readyz", timeout=10)
            assert ready.status_code == 200, ready.text
        # each service of the second platform has its own embedded database
        for service in service_definitions():
            assert (tmp_path / "second" / f"{service}.sqlite3").exists()
        # the same data directory twice is refused, naming the problem
        with pytest.raises(module.PlatformError, match="already running on data dir"):
            module.Platform(data_dir=tmp_path / "second", amqp_uri=second.amqp_uri,
                            http_address=module.free_address()).start(timeout=30)
    finally:
        second.stop()
        delete_vhost(vhost)
    # the first platform never noticed
    assert requests.get(platform.url + "/readyz", timeout=10).status_code == 200
    assert requests.get(platform.url + "/v1/ping", timeout=10).json()["pong"] is True
