"""make up's metrics addresses (issue 18): every run and relay process gets a free loopback port unless its
variable is set, and ``make up`` prints each /metrics URL. No process is started."""

from __future__ import annotations

import pytest
from e2e_platform import load_script


@pytest.fixture(scope="module")
def platform_module():
    return load_script("scripts/upgestao_platform.py", "upgestao_platform")


def test_every_process_gets_a_metrics_port_unless_its_variable_says_otherwise(platform_module, tmp_path):
    given = {"IDENTITY_METRICS_ADDRESS": "127.0.0.1:19100", "PRIVACY_RELAY_METRICS_ADDRESS": ""}
    platform = platform_module.Platform(data_dir=tmp_path, env=given)
    platform.plan_metrics()
    names = {s.name for s in platform.services}
    assert len(names) == 6
    assert set(platform.metrics_addresses) == names | {f"{n}-relay" for n in names} - {"privacy-relay"}
    assert platform.metrics_addresses["identity"] == "127.0.0.1:19100"
    assert platform.metrics_url("identity") == "http://127.0.0.1:19100/metrics"
    assert platform.metrics_url("privacy-relay") is None  # empty: that process serves none
    ports = {address.rsplit(":", 1)[1] for address in platform.metrics_addresses.values()}
    assert len(ports) == 11 and all(a.startswith("127.0.0.1:") for a in platform.metrics_addresses.values())
    env = platform.environment("gateway")
    assert env["GATEWAY_METRICS_ADDRESS"] == platform.metrics_addresses["gateway"]
    assert env["GATEWAY_RELAY_METRICS_ADDRESS"] == platform.metrics_addresses["gateway-relay"]
    assert env["IDENTITY_METRICS_ADDRESS"] == "127.0.0.1:19100" and env["PRIVACY_RELAY_METRICS_ADDRESS"] == ""


def test_the_variable_of_each_process(platform_module):
    assert platform_module.metrics_variable("messaging") == "MESSAGING_METRICS_ADDRESS"
    assert platform_module.metrics_variable("gateway-relay") == "GATEWAY_RELAY_METRICS_ADDRESS"
